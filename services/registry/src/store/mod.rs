//! Persistence of sessions and gateways. [`SessionStore`] is what the service needs; [`SqlStore`]
//! implements it with sea-orm on PostgreSQL (production) and SQLite (embedded default) — the same
//! code, with backend-specific SQL only where a bulk statement needs it.

mod entity;
pub mod migration;
mod sql;

pub use sql::SqlStore;

use async_trait::async_trait;
use vigil_runtime::ServiceResult;

use crate::domain::{
    EpochMillis, GatewayEnd, GatewayRecord, GeoLocation, ListQuery, PendingActivity, Reconciliation, Resolution,
    Selector, SessionEnd, SessionFilter, SessionPage, SessionRecord, SessionStats,
};

/// Where [`SessionStore::live_targets`] sends its batches.
pub type TargetSink = tokio::sync::mpsc::Sender<ServiceResult<Vec<vigil_clients::registry::SessionTarget>>>;

/// Durable state of the registry.
///
/// Every method is atomic: it either fully happens or returns an error and changes nothing.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Records a new session (live, status ACTIVE). `AlreadyExists` when the id is taken.
    async fn insert_session(&self, session: &SessionRecord) -> ServiceResult<()>;

    /// One session, live or ended.
    async fn get_session(&self, id: &str) -> ServiceResult<Option<SessionRecord>>;

    /// Ends a live session. Returns the ended record, or `None` when the session does not exist or
    /// had already ended (ending twice is not an error and changes nothing). When `gateway_id` is
    /// given, only a session on that gateway is ended (an agent may only end its own sessions).
    async fn end_session(
        &self,
        id: &str,
        gateway_id: Option<&str>,
        end: &SessionEnd,
    ) -> ServiceResult<Option<SessionRecord>>;

    /// Ends several sessions, each only if it is live on its gateway: what `end_session` does for
    /// each, in as few statements as the backend allows. Returns, per entry and in order, the
    /// ended record, or `None` (unknown, ended already, another gateway's, or named earlier in the
    /// same batch).
    async fn end_sessions(&self, ends: &[GatewayEnd]) -> ServiceResult<Vec<Option<SessionRecord>>>;

    /// Applies a batch of activity reports in as few statements as the backend allows. Reports for
    /// unknown or ended sessions, or for sessions of another gateway than `gateway_id` (when given),
    /// are ignored. `last_activity_at` only moves forward; byte counters only grow. Sessions that
    /// were IDLE and whose new input is recent (`now - last_input < idle_after_ms`) become ACTIVE;
    /// those are returned, in their new state, so the caller can announce the change.
    async fn apply_activity(
        &self,
        gateway_id: Option<&str>,
        batch: &[PendingActivity],
        now: EpochMillis,
        idle_after_ms: i64,
    ) -> ServiceResult<Vec<SessionRecord>>;

    /// Turns ACTIVE sessions whose last input is older than `cutoff` IDLE, at most `limit` at a time,
    /// and returns them in their new state. Safe to run on every replica at once: each session is
    /// changed (and returned) by one of them only.
    async fn mark_idle(&self, cutoff: EpochMillis, limit: u64) -> ServiceResult<Vec<SessionRecord>>;

    /// Reconciles a gateway's snapshot: live sessions of `gateway_id` whose ids are not in
    /// `held` are ended with `end`; sessions in `held` that the registry does not know are
    /// inserted; known ones are left as they are. One transaction.
    async fn reconcile_gateway(
        &self,
        gateway_id: &str,
        held: &[SessionRecord],
        end: &SessionEnd,
    ) -> ServiceResult<Reconciliation>;

    /// A page of sessions.
    async fn list_sessions(&self, query: &ListQuery) -> ServiceResult<SessionPage>;

    /// Live sessions: (ACTIVE, IDLE). Cheap where `stats` is not: two counts the indexes answer,
    /// for a gauge read every few seconds on every replica.
    async fn live_counts(&self) -> ServiceResult<(u64, u64)>;

    /// Live-session figures for the sessions the filter covers (its statuses are ignored);
    /// `ended_since` counts sessions that ended at or after that time.
    async fn stats(
        &self,
        filter: &SessionFilter,
        now: EpochMillis,
        ended_since: EpochMillis,
    ) -> ServiceResult<SessionStats>;

    /// The live sessions a selector covers, and what it named that is not live.
    async fn resolve(&self, selector: &Selector) -> ServiceResult<Resolution>;

    /// Where the user's live sessions come from (admission asks geo about a new start with them).
    async fn live_locations_of(&self, user: &str) -> ServiceResult<Vec<GeoLocation>>;

    /// Every live session (only the idle ones with `idle_only`) as where a kill goes, read in one
    /// statement ordered by gateway and sent to `sink` as it is read, in batches of whole gateways
    /// of at least `batch` sessions (the last may be smaller). Stops early, without error, when
    /// the receiver is gone.
    async fn live_targets(&self, idle_only: bool, batch: usize, sink: &TargetSink) -> ServiceResult<()>;

    /// Records that a gateway's agent connected to `replica`.
    async fn gateway_connected(
        &self,
        gateway_id: &str,
        replica: &str,
        agent_version: &str,
        now: EpochMillis,
    ) -> ServiceResult<()>;

    /// Records that the gateway's link to `replica` closed (no-op when it has since connected to
    /// another replica).
    async fn gateway_disconnected(&self, gateway_id: &str, replica: &str, now: EpochMillis) -> ServiceResult<()>;

    /// All gateways (or only connected ones), with their live-session counts.
    async fn list_gateways(&self, connected_only: bool) -> ServiceResult<Vec<GatewayRecord>>;

    /// Whether the database answers (for readiness).
    async fn ping(&self) -> ServiceResult<()>;

    /// Records when each of these gateways was last heard from, in as few statements as the backend
    /// allows (`last_seen_at` only moves forward). Unknown gateways are skipped.
    async fn gateways_seen(&self, seen: &[(String, EpochMillis)]) -> ServiceResult<()>;

    /// Gateways last heard from before `cutoff` are lost: their live sessions are ended with `end`
    /// and they are marked disconnected, at most `limit` gateways per call (the oldest first).
    /// Safe on every replica at once: each session is ended, and returned, by one call only. A
    /// gateway reconnecting meanwhile is either seen as fresh, or its reconnection waits for this to
    /// finish and then finds its sessions ended.
    async fn end_lost_gateways(&self, cutoff: EpochMillis, end: &SessionEnd, limit: u64)
    -> ServiceResult<LostGateways>;

    /// A returning gateway still holds these sessions: those of them that were ended because the
    /// gateway was lost (reason GATEWAY_LOST) are live again, ACTIVE or IDLE by their last activity.
    /// Returns them in their new state.
    async fn revive_lost_sessions(
        &self,
        gateway_id: &str,
        held: &[String],
        now: EpochMillis,
        idle_after_ms: i64,
    ) -> ServiceResult<Vec<SessionRecord>>;
}

/// What one round of [`SessionStore::end_lost_gateways`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LostGateways {
    /// The gateways found lost.
    pub gateway_ids: Vec<String>,
    /// Their sessions that were live, now ended.
    pub ended: Vec<SessionRecord>,
}
