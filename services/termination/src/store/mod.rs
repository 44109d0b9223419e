//! Persistence of terminations and commands: the audit trail, and the memory of every command
//! until its gateway acknowledges it. [`SqlTerminationStore`] implements [`TerminationStore`] with
//! sea-orm on PostgreSQL and SQLite.

mod entity;
pub mod migration;
mod sql;

pub use sql::SqlTerminationStore;

use async_trait::async_trait;
use vigil_runtime::ServiceResult;

use crate::domain::{
    CommandRecord, CommandReport, DeliveryCounts, EpochMillis, TerminationPage, TerminationQuery, TerminationRecord,
};

/// Durable state of the termination service. Every method is atomic.
#[async_trait]
pub trait TerminationStore: Send + Sync + 'static {
    /// Records a termination and its commands in one transaction, and returns the commands as
    /// stored. A command for a session that already has an open (PENDING or DELIVERED) command —
    /// from an earlier termination — is stored as ALREADY_ENDED with detail naming that
    /// termination, and is not sent: the same kill twice ends a session once. This holds under
    /// concurrency (two terminations racing for one session: exactly one open command results).
    async fn record(
        &self,
        termination: &TerminationRecord,
        commands: &[CommandRecord],
    ) -> ServiceResult<Vec<CommandRecord>>;

    /// One termination with all its commands.
    async fn get(&self, id: &str) -> ServiceResult<Option<(TerminationRecord, Vec<CommandRecord>)>>;

    /// A page of the audit trail, newest first, with per-state counts.
    async fn list(&self, query: &TerminationQuery) -> ServiceResult<TerminationPage>;

    /// Open commands for a gateway, oldest first.
    async fn open_commands_for_gateway(&self, gateway_id: &str) -> ServiceResult<Vec<CommandRecord>>;

    /// Applies reports. Transitions only move forward (PENDING → DELIVERED → ACKNOWLEDGED or
    /// FAILED); a report for a command of another gateway, or that would move a command backwards
    /// changes nothing. A report for a command not recorded yet is kept and applied when its
    /// termination is recorded (the kill is published while it is recorded, so the answer can come
    /// first); the count returned includes it only when that happened by the time the call returns. ACKNOWLEDGED with outcome DONE or NOT_FOUND makes
    /// the command ACKNOWLEDGED; with FAILED, FAILED with the detail. Returns how many commands changed.
    /// DELIVERED sets `delivered_at`; ACKNOWLEDGED and FAILED set `acknowledged_at` (when the
    /// gateway answered) and the report's detail, clear `next_attempt_at`, and set `delivered_at`
    /// to the answer's time when no delivery was reported. A report with
    /// another state, or ACKNOWLEDGED without an outcome, changes nothing.
    async fn apply_reports(&self, reports: &[CommandReport]) -> ServiceResult<u64>;

    /// Applies kept reports (see `apply_reports`) whose commands exist by now, and forgets kept
    /// reports older than the retention (about commands never recorded). Returns how many command
    /// updates were made. Called periodically: `record` applies the kept reports about its own
    /// commands once they are written.
    async fn settle_early_reports(&self, now: EpochMillis) -> ServiceResult<u64>;

    /// Claims open commands due for (re)sending — `next_attempt_at <= now` — at most `limit`:
    /// increments `attempts`, sets `next_attempt_at = now + retry_after(attempts)` and returns them
    /// in their new state. Safe on several replicas at once: each due command is claimed by one.
    async fn claim_due(
        &self,
        now: EpochMillis,
        limit: u64,
        retry_after: &(dyn Fn(u32) -> i64 + Send + Sync),
    ) -> ServiceResult<Vec<CommandRecord>>;

    /// Counts of a termination's commands by state.
    async fn counts(&self, termination_id: &str) -> ServiceResult<DeliveryCounts>;

    /// Whether the database answers.
    async fn ping(&self) -> ServiceResult<()>;
}
