//! Terminations for scripts.

use serde_json::{Value, json};
use vigil_proto::v1::{ListTerminationsResponse, Termination, TerminationCommand};

use crate::json::{delivery_state_name, end_reason_name, selector, timestamp};

/// One termination: the record, its delivery counts and (from `get` and `sessions end`) its commands.
pub fn termination(t: &Termination) -> Value {
    json!({
        "id": t.id,
        "actor": t.actor,
        "selector": selector(t.selector.as_ref()),
        "reason": end_reason_name(t.reason()),
        "user_message": t.user_message,
        "note": t.note,
        "created_at": timestamp(t.created_at.as_ref()),
        "session_count": t.session_count,
        "pending": t.pending,
        "delivered": t.delivered,
        "acknowledged": t.acknowledged,
        "failed": t.failed,
        "already_ended": t.already_ended,
        "commands": t.commands.iter().map(command).collect::<Vec<_>>(),
    })
}

pub fn command(c: &TerminationCommand) -> Value {
    json!({
        "command_id": c.command_id,
        "session_id": c.session_id,
        "gateway_id": c.gateway_id,
        "user": c.user,
        "state": delivery_state_name(c.state()),
        "detail": c.detail,
        "attempts": c.attempts,
        "acknowledged_at": timestamp(c.acknowledged_at.as_ref()),
    })
}

/// A page (or, with `--all`, every page) of the audit trail.
pub fn terminations_page(page: &ListTerminationsResponse) -> Value {
    json!({
        "terminations": page.terminations.iter().map(termination).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{
        DeliveryState, EndReason, ListTerminationsResponse, SessionSelector, Termination, TerminationCommand,
    };

    use vigil_proto::v1::session_selector::Target;

    use super::*;
    use crate::testing::ts;

    #[test]
    fn terminations_map_with_their_commands() {
        use vigil_proto::v1::AllSessions;
        let t = Termination {
            id: "0193a000-0000-7000-8000-00000000abcd".into(),
            actor: "admin@example.com".into(),
            selector: Some(SessionSelector {
                target: Some(Target::All(AllSessions { idle_only: true })),
            }),
            reason: EndReason::Policy.into(),
            user_message: "Idle sessions are closed at night".into(),
            note: "nightly sweep".into(),
            created_at: ts(1_741_076_100, 0),
            session_count: 2,
            pending: 1,
            acknowledged: 1,
            commands: vec![
                TerminationCommand {
                    command_id: "c1".into(),
                    session_id: "s1".into(),
                    gateway_id: "gw-eu-1".into(),
                    user: "alice@example.com".into(),
                    state: DeliveryState::Acknowledged.into(),
                    attempts: 1,
                    acknowledged_at: ts(1_741_076_101, 0),
                    ..TerminationCommand::default()
                },
                TerminationCommand {
                    command_id: "c2".into(),
                    session_id: "s2".into(),
                    state: DeliveryState::Pending.into(),
                    ..TerminationCommand::default()
                },
            ],
            ..Termination::default()
        };
        let value = termination(&t);
        assert_eq!(value["selector"], json!({ "all": { "idle_only": true } }));
        assert_eq!(value["reason"], "policy");
        assert_eq!(value["created_at"], "2025-03-04T08:15:00Z");
        assert_eq!(value["session_count"], 2);
        assert_eq!(value["pending"], 1);
        assert_eq!(value["commands"][0]["state"], "acknowledged");
        assert_eq!(value["commands"][0]["acknowledged_at"], "2025-03-04T08:15:01Z");
        assert_eq!(value["commands"][1]["state"], "pending");
        assert_eq!(value["commands"][1]["acknowledged_at"], Value::Null);

        let page = terminations_page(&ListTerminationsResponse {
            terminations: vec![t.clone()],
            next_page_token: "next".into(),
        });
        assert_eq!(page["terminations"][0]["id"], t.id.as_str());
        assert_eq!(page["next_page_token"], "next");

        let outcome = crate::sessions::json::end_outcome(None, &["s9".to_owned()]);
        assert_eq!(outcome, json!({ "termination": null, "already_ended": ["s9"] }));
        assert_eq!(
            selector(Some(&SessionSelector {
                target: Some(Target::User("bob".into()))
            })),
            json!({ "user": "bob" })
        );
    }
}
