//! A `Terminate` request checked: the termination to record, the selector as given and as
//! validated, and the count the caller expects. Kept apart from `service` (which takes requests)
//! and `issue` (which carries orders out) so that both depend on it and neither on the other's
//! request handling.

use vigil_core::{Selector, validate};
use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{EndReason, SelectorRecord, TerminationRecord};
use crate::now_millis;

/// Longest user message or note accepted.
const MAX_TEXT_LEN: usize = 1024;

/// A checked `Terminate` request.
pub(crate) struct Order {
    pub termination: TerminationRecord,
    pub selector: pb::SessionSelector,
    pub validated: Selector,
    pub expected: Option<u32>,
}

impl Order {
    /// Checks `request`, made by `actor`.
    pub(crate) fn new(actor: &str, request: &pb::TerminateRequest) -> ServiceResult<Self> {
        let selector = request.selector.clone().unwrap_or_default();
        let validated = validate::selector(Some(&selector))?;
        let reason = requested_reason(request.reason)?;
        let user_message =
            text("user_message", &request.user_message)?.unwrap_or_else(|| default_message(reason).into());
        let note = text("note", &request.note)?.unwrap_or_default();
        Ok(Self {
            termination: TerminationRecord {
                id: uuid::Uuid::now_v7().to_string(),
                actor: actor.to_owned(),
                selector: selector_record(&validated),
                reason,
                user_message,
                note,
                created_at: now_millis(),
            },
            selector,
            validated,
            expected: request.expected_count,
        })
    }
}

/// What a user sees when ended for `reason`, unless the caller says otherwise.
pub(crate) fn default_message(reason: EndReason) -> &'static str {
    match reason {
        EndReason::IdleTimeout => "Your session was disconnected after a period of inactivity.",
        EndReason::MaxDuration => "Your session reached its maximum allowed duration and was disconnected.",
        EndReason::ConcurrencyLimit => "Your session was disconnected because you opened more sessions than allowed.",
        EndReason::Anomaly => "Your session was disconnected by security because of unusual sign-in activity.",
        EndReason::Locked => "Your access has been suspended by security.",
        EndReason::UserSelfService => "You ended this session.",
        EndReason::Policy => "Your session was disconnected by policy.",
        EndReason::Admin
        | EndReason::Unspecified
        | EndReason::UserClosed
        | EndReason::Lost
        | EndReason::GatewayLost
        | EndReason::GatewayClosed => "You have been disconnected by an administrator.",
    }
}

/// The reason of a request, if it is one a caller may give.
fn requested_reason(reason: i32) -> ServiceResult<EndReason> {
    match EndReason::try_from(reason) {
        Ok(EndReason::Unspecified) => Err(ServiceError::invalid(
            "reason is required (ADMIN, USER_SELF_SERVICE, IDLE_TIMEOUT, MAX_DURATION, CONCURRENCY_LIMIT, ANOMALY, POLICY or LOCKED)",
        )),
        Ok(EndReason::UserClosed | EndReason::Lost | EndReason::GatewayLost | EndReason::GatewayClosed) => {
            Err(ServiceError::invalid(
                "reason must say why the session is being ended (USER_CLOSED, LOST, GATEWAY_LOST and GATEWAY_CLOSED are recorded by gateways, not asked for)",
            ))
        }
        Ok(reason) => Ok(reason),
        Err(_) => Err(ServiceError::invalid(format!(
            "reason {reason} is not a known end reason"
        ))),
    }
}

fn selector_record(selector: &Selector) -> SelectorRecord {
    match selector {
        Selector::Ids(ids) => SelectorRecord::Ids(ids.clone()),
        Selector::User(user) => SelectorRecord::User(user.clone()),
        Selector::Gateway(gateway) => SelectorRecord::Gateway(gateway.clone()),
        Selector::Resource(resource) => SelectorRecord::Resource(resource.clone()),
        Selector::All { idle_only } => SelectorRecord::All { idle_only: *idle_only },
        Selector::Group(group) => SelectorRecord::Group(group.clone()),
        Selector::Device(device) => SelectorRecord::Device(device.clone()),
        Selector::Cidr(network) => SelectorRecord::Cidr(network.to_string()),
    }
}

fn text(field: &str, value: &str) -> ServiceResult<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    let chars = value.chars().count();
    if chars > MAX_TEXT_LEN {
        return Err(ServiceError::invalid(format!(
            "{field} is {chars} characters long; at most {MAX_TEXT_LEN} are allowed"
        )));
    }
    // Line breaks and tabs are text; other control characters (terminal escapes) would reach the
    // ended user's terminal and every reader of the audit trail as they are.
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ServiceError::invalid(format!(
            "{field} must not contain control characters other than line breaks and tabs"
        )));
    }
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_message_for_the_user() {
        assert_eq!(
            default_message(EndReason::Admin),
            "You have been disconnected by an administrator."
        );
        assert!(default_message(EndReason::IdleTimeout).contains("inactivity"));
    }
}
