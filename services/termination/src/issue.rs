//! Issuing a termination: from a checked request to commands on their way and on the record.
//!
//! Two ways, chosen per request:
//! - **Routed** (ids of sessions all in the in-memory route, and no `expected_count`): the
//!   commands are published at once, from the route — no database round trip before the publish,
//!   and none at all but the record. A session the route still lists a moment after it ended gets
//!   its command all the same; its gateway answers NOT_FOUND, and the command is recorded
//!   acknowledged with that answer.
//!
//!   An end-all routed the same way (every routed session published at once while the registry
//!   resolves, then what the route lacked) put its first command out in 0.05 s instead of 0.2 s
//!   at 10k sessions, but at 100k its record started only after the resolve, amid the flood of
//!   acknowledgements, and the request ran past the server's 30 s timeout: an end-all resolves
//!   first, until its record can start beside the publish. Tried again once the reports were
//!   reconciled by id (no more timeout), it was slower than streaming: last agent 3.4 s against
//!   1.9–2.3 s, as building and publishing 100k commands at once takes the cores first, and
//!   every acknowledgement then floods back while the registry reads.
//! - **Streamed** (every live session, or every idle one, and no `expected_count`): the registry
//!   reads where each live session is (its id, gateway and user, nothing more) ordered by gateway,
//!   and hands it over in batches of whole gateways as it reads; each batch's commands are
//!   published at once, so the first agents hold their commands before the last row is read. The
//!   commands are then recorded in bulk (one statement on PostgreSQL) while the last publishes go
//!   out: the statements of an end-all do not grow with its sessions.
//! - **Resolved** (anything else): the registry resolves the selector, then the commands are
//!   published while they are recorded.
//!
//! Every way the commands go out before or while their record is written, never after it: the
//! durable write (a commit and its fsync) would otherwise sit on every kill's critical path. A
//! routed kill publishes first and records once the publish returned, so the record does not
//! compete with the command on its way. Safe both ways round:
//! - the record commits: every command is PENDING with a next attempt, so one whose publish was
//!   lost is re-sent by the redelivery loop until acknowledged;
//! - the record fails: the caller is told, and nothing is lost that the caller does not know of
//!   (an acknowledgement of an unrecorded command is kept for a while and then forgotten; the
//!   registry still records the session's end).
//!
//! A command that `record` turns into ALREADY_ENDED (another termination is already ending that
//! session) may have been published too; the agent answers it NOT_FOUND or as part of the kill in
//! progress, and the session still ends once.

use tracing::Instrument;
use vigil_core::Selector;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::delivery::publish;
use crate::domain::{CommandRecord, DeliveryState, TerminationRecord};
use crate::order::Order;
use crate::routes::Route;
use crate::service::Terminator;

/// The detail of a command for a session that had ended by the time it was resolved.
const HAD_ENDED: &str = "the session had already ended";

/// How long a routed kill's publish runs alone before its record starts beside it. A publish takes
/// a fraction of a millisecond; one that takes longer is waiting for Redis, and the kill's record
/// (hence the caller) should not wait with it.
const PUBLISH_HEAD_START: std::time::Duration = std::time::Duration::from_millis(20);

impl Terminator {
    /// Publishes and records the commands of `order`; returns them as recorded.
    pub(crate) async fn issue(&self, order: &Order) -> ServiceResult<Vec<CommandRecord>> {
        if let Some(routes) = self.routed(order) {
            let mut commands = self.routed_commands(&order.termination, &routes);
            self.allow_for_acknowledgements(&mut commands);
            return self.send_then_record(&order.termination, &commands).await;
        }
        match (&order.validated, order.expected) {
            (Selector::All { idle_only }, None) => self.issue_streamed(&order.termination, *idle_only).await,
            _ => self.issue_resolved(order).await,
        }
    }

    /// Every live session: each batch of whole gateways the registry reads is published at once,
    /// while it reads the next; once the last is in, the commands are recorded in bulk as the last
    /// publishes go out. A failed read after some commands went out still records those (they are
    /// tracked and re-sent like any other) before the caller is told.
    async fn issue_streamed(
        &self,
        termination: &TerminationRecord,
        idle_only: bool,
    ) -> ServiceResult<Vec<CommandRecord>> {
        let mut batches = self.directory().live_targets(idle_only).await?;
        let mut commands: Vec<CommandRecord> = Vec::new();
        let mut publishing = tokio::task::JoinSet::new();
        let mut failure = None;
        while let Some(batch) = batches.recv().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            let sending: Vec<CommandRecord> = batch
                .iter()
                .map(|target| self.open_command(termination, &target.id, &target.gateway_id, &target.user))
                .collect();
            commands.extend_from_slice(&sending);
            let bus = self.bus().clone();
            publishing.spawn(async move { publish(&bus, &sending).await }.in_current_span());
        }
        // The commands went out as they were made; how many there are is known only now.
        self.allow_for_acknowledgements(&mut commands);
        let (_unreachable, recorded) = tokio::join!(publishing.join_all(), self.record(termination, &commands));
        match failure {
            None => recorded,
            Some(error) if commands.is_empty() => Err(error),
            Some(error) => Err(ServiceError::Unavailable(format!(
                "reading the live sessions failed ({error}) after {} command(s) had been sent{}; retry to end the rest",
                commands.len(),
                match recorded {
                    Ok(_) => format!(" and recorded in termination {}", termination.id),
                    Err(_) => String::new(),
                }
            ))),
        }
    }

    /// The routes of the sessions a request names, when all are known and nothing else must be
    /// checked first.
    fn routed(&self, order: &Order) -> Option<Vec<(String, Route)>> {
        if order.expected.is_some() {
            // The count must be checked before anything goes out: that takes the registry.
            return None;
        }
        match &order.validated {
            Selector::Ids(ids) => self.routes().lookup(ids),
            _ => None,
        }
    }

    /// The registry resolves, then the commands go out while they are recorded.
    async fn issue_resolved(&self, order: &Order) -> ServiceResult<Vec<CommandRecord>> {
        let resolved = self.directory().resolve(&order.selector).await?;
        if let Some(expected) = order.expected
            && resolved.sessions.len() != expected as usize
        {
            return Err(ServiceError::FailedPrecondition(format!(
                "the selector now covers {} live session(s), not the {expected} expected; nothing was ended",
                resolved.sessions.len()
            )));
        }
        let termination = &order.termination;
        let mut commands: Vec<CommandRecord> = resolved
            .sessions
            .iter()
            .map(|session| self.open_command(termination, &session.id, &session.gateway_id, &session.user))
            .collect();
        commands.extend(
            resolved
                .already_ended
                .iter()
                .map(|session_id| ended_command(termination, session_id, HAD_ENDED)),
        );
        self.allow_for_acknowledgements(&mut commands);
        self.send_and_record(termination, &commands).await
    }

    /// Publishes `commands`, then records them: the routed path, a kill of a few sessions. The
    /// record's statements would otherwise compete for the CPU (the database's backend, this
    /// runtime's threads) with the command on its way through the bus and the registry; after the
    /// publish returned, Redis has handed the command on, and the caller waits for the record
    /// either way. A publish still out after [`PUBLISH_HEAD_START`] (Redis away, its connection
    /// being re-made) no longer holds the record back: both then finish side by side.
    async fn send_then_record(
        &self,
        termination: &TerminationRecord,
        commands: &[CommandRecord],
    ) -> ServiceResult<Vec<CommandRecord>> {
        let publishing = publish(self.bus(), commands);
        tokio::pin!(publishing);
        if tokio::time::timeout(PUBLISH_HEAD_START, &mut publishing).await.is_ok() {
            return self.record(termination, commands).await;
        }
        let (_unreachable, recorded) = tokio::join!(publishing, self.record(termination, commands));
        recorded
    }

    /// Publishes `commands` while they are recorded.
    async fn send_and_record(
        &self,
        termination: &TerminationRecord,
        commands: &[CommandRecord],
    ) -> ServiceResult<Vec<CommandRecord>> {
        // Publish first in the join: its first poll puts the messages on their way.
        let (_unreachable, recorded) = tokio::join!(publish(self.bus(), commands), self.record(termination, commands));
        recorded
    }

    fn routed_commands(&self, termination: &TerminationRecord, routes: &[(String, Route)]) -> Vec<CommandRecord> {
        routes
            .iter()
            .map(|(session_id, route)| self.open_command(termination, session_id, &route.gateway_id, &route.user))
            .collect()
    }

    /// Records, telling the caller plainly what a failure means.
    async fn record(
        &self,
        termination: &TerminationRecord,
        commands: &[CommandRecord],
    ) -> ServiceResult<Vec<CommandRecord>> {
        self.store()
            .record(termination, commands)
            .await
            .map_err(|error| match error {
                ServiceError::Unavailable(detail) => ServiceError::Unavailable(format!(
                    "the termination could not be recorded ({detail}); its commands may already have reached the gateways — check the sessions, then retry"
                )),
                other => other,
            })
    }

    /// Moves the first re-send of `commands` (one termination's) back by
    /// `termination.ack_allowance_per_command` for each: their acknowledgements take that long to
    /// be recorded, and a re-send before then mostly repeats commands already answered.
    fn allow_for_acknowledgements(&self, commands: &mut [CommandRecord]) {
        let allowance_ms = self.settings().ack_allowance_ms(commands.len());
        allow_for_acknowledgements(commands, allowance_ms);
    }

    /// A command to send to a live session.
    fn open_command(
        &self,
        termination: &TerminationRecord,
        session_id: &str,
        gateway_id: &str,
        user: &str,
    ) -> CommandRecord {
        let now = termination.created_at;
        CommandRecord {
            gateway_id: gateway_id.to_owned(),
            user: user.to_owned(),
            state: DeliveryState::Pending,
            attempts: 1,
            next_attempt_at: Some(now + self.settings().retry_after_ms(1)),
            ..ended_command(termination, session_id, "")
        }
    }
}

/// Adds `allowance_ms` to the next attempt of every open command (ended ones have none).
fn allow_for_acknowledgements(commands: &mut [CommandRecord], allowance_ms: i64) {
    if allowance_ms == 0 {
        return;
    }
    for next_attempt_at in commands
        .iter_mut()
        .filter_map(|command| command.next_attempt_at.as_mut())
    {
        *next_attempt_at = next_attempt_at.saturating_add(allowance_ms);
    }
}

/// A command recorded for a session that is not live, and not sent.
fn ended_command(termination: &TerminationRecord, session_id: &str, detail: &str) -> CommandRecord {
    CommandRecord {
        id: uuid::Uuid::now_v7().to_string(),
        termination_id: termination.id.clone(),
        session_id: session_id.to_owned(),
        gateway_id: String::new(),
        user: String::new(),
        reason: termination.reason,
        user_message: termination.user_message.clone(),
        state: DeliveryState::AlreadyEnded,
        detail: detail.to_owned(),
        attempts: 0,
        created_at: termination.created_at,
        next_attempt_at: None,
        delivered_at: None,
        acknowledged_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TerminationSettings;

    #[test]
    fn an_end_all_waits_for_its_acknowledgements_before_re_sending() {
        let termination = TerminationRecord {
            id: "t-1".into(),
            actor: "admin".into(),
            selector: crate::domain::SelectorRecord::All { idle_only: false },
            reason: crate::domain::EndReason::Admin,
            user_message: String::new(),
            note: String::new(),
            created_at: 1_000,
        };
        let settings = TerminationSettings::default();
        let open = CommandRecord {
            next_attempt_at: Some(termination.created_at + settings.retry_after_ms(1)),
            ..ended_command(&termination, "s-open", "")
        };
        let mut commands: Vec<CommandRecord> = (0..100_000)
            .map(|n| {
                if n == 0 {
                    ended_command(&termination, "s-ended", HAD_ENDED)
                } else {
                    open.clone()
                }
            })
            .collect();
        let allowance_ms = settings.ack_allowance_ms(commands.len());
        allow_for_acknowledgements(&mut commands, allowance_ms);
        assert_eq!(
            commands[0].next_attempt_at, None,
            "an ended session's command is never re-sent"
        );
        assert!(
            commands[1..]
                .iter()
                .all(|command| command.next_attempt_at == Some(1_000 + 5_000 + 25_000)),
            "ack timeout, then 250 µs for each of 100,000 commands"
        );
    }
}
