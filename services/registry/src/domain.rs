//! Sessions and gateways as plain Rust values, with the rules that decide their status.
//! No gRPC and no SQL here: the store and the service translate at the edges.

use serde::{Deserialize, Serialize};
pub use vigil_proto::v1::{EndReason, LocationKind, ResourceType, SessionStatus};

pub use vigil_core::{EpochMillis, LAST_ACTIVITY_ORDER_MS, Selector, last_activity_rank};

/// The registry's record of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// UUID text, lowercase, hyphenated.
    pub id: String,
    pub user: String,
    pub user_groups: Vec<String>,
    pub gateway_id: String,
    pub resource_name: String,
    pub resource_type: ResourceType,
    pub device: String,
    /// Normalised IP text (as `IpAddr::to_string` prints it).
    pub client_ip: String,
    pub location: GeoLocation,
    pub risk: RiskAssessment,
    pub started_at: EpochMillis,
    pub last_activity_at: EpochMillis,
    /// ACTIVE, IDLE or DISCONNECTED (never UNSPECIFIED).
    pub status: SessionStatus,
    pub ended_at: Option<EpochMillis>,
    pub end_reason: Option<EndReason>,
    pub end_detail: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl SessionRecord {
    /// Whether the session is still running (ACTIVE or IDLE).
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }

    /// Seconds from start to end, or to `now` while live; never negative.
    pub fn duration_seconds(&self, now: EpochMillis) -> u64 {
        let end = self.ended_at.unwrap_or(now);
        (end.saturating_sub(self.started_at).max(0) / 1000) as u64
    }
}

/// Where a client address is (what the geo service said, or why it said nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeoLocation {
    pub kind: i32,
    pub city: String,
    pub region: String,
    pub country_code: String,
    pub country_name: String,
    /// Latitude and longitude in degrees, when known.
    pub coordinates: Option<(f64, f64)>,
    pub accuracy_radius_km: u32,
    pub time_zone: String,
    pub asn: u32,
    pub asn_organization: String,
}

/// The risk flag a start carries when policy admitted it flagged (its risk score reached the
/// policy's `flag_risk_score`): what makes a `session.flagged` event. Geo's own flags (a new
/// device, 10 points) explain the score; without policy's verdict they stay on `session.opened`.
pub const FLAGGED_FOR_REVIEW: &str = "flagged_for_review";

/// One rule that fired on a session start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFlag {
    pub code: String,
    pub points: u32,
    pub explanation: String,
}

/// How unusual a session start was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub assessed: bool,
    pub score: u32,
    pub flags: Vec<RiskFlag>,
}

/// The status a live session should have, from its last input and the idle threshold.
pub fn live_status(last_activity_at: EpochMillis, now: EpochMillis, idle_after_ms: i64) -> SessionStatus {
    if now.saturating_sub(last_activity_at) >= idle_after_ms {
        SessionStatus::Idle
    } else {
        SessionStatus::Active
    }
}

/// An activity report for one session, as the agent sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityUpdate<'a> {
    pub session_id: &'a str,
    /// Last user input, when there was any since the last report.
    pub last_input_at: Option<EpochMillis>,
    /// Running totals.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// An owned activity report, as buffered between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingActivity {
    pub session_id: String,
    pub last_input_at: Option<EpochMillis>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub ended_at: EpochMillis,
    pub reason: EndReason,
    pub detail: String,
}

/// One session to end, only if it is live on `gateway_id` (an agent acknowledged its kill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEnd {
    pub session_id: String,
    pub gateway_id: String,
    pub end: SessionEnd,
}

/// A gateway as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    pub id: String,
    pub connected: bool,
    /// The registry replica holding the link, when connected.
    pub replica: Option<String>,
    pub connected_at: EpochMillis,
    pub last_seen_at: EpochMillis,
    pub agent_version: String,
    pub live_sessions: u64,
}

/// Which sessions a list or a stat covers. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionFilter {
    /// Statuses to include; empty means live (ACTIVE and IDLE).
    pub statuses: Vec<SessionStatus>,
    pub user: Option<String>,
    pub resource_name: Option<String>,
    pub resource_type: Option<ResourceType>,
    pub gateway_id: Option<String>,
    /// Upper-case ISO code.
    pub country_code: Option<String>,
    /// Lower-cased free text, matched as a substring of user, resource, device, IP, city, gateway.
    pub query: Option<String>,
    pub min_risk_score: Option<u32>,
    pub flagged_only: bool,
    pub client_ip: Option<String>,
    /// Only refused admissions: sessions recorded as ended at their start with reason POLICY.
    pub denied_only: bool,
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortKey {
    #[default]
    StartedAt,
    /// Last input, ranked by [`last_activity_rank`]: to the nearest [`LAST_ACTIVITY_ORDER_MS`].
    LastActivity,
    User,
    Resource,
    RiskScore,
}

/// The value of the sort key of the last row of a page, to continue after it (keyset paging).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

/// Where the next page starts: strictly after this (sort value, id) in the list's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageCursor {
    pub value: SortValue,
    pub id: String,
}

/// A page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filter: SessionFilter,
    pub sort: SortKey,
    pub ascending: bool,
    /// 1..=1000.
    pub limit: u64,
    pub after: Option<PageCursor>,
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    /// Set when there may be more: the cursor of the last row.
    pub next: Option<PageCursor>,
    /// Rows matching the filter across all pages, counted up to [`EXACT_TOTAL_UP_TO`].
    pub total: u64,
    /// More rows match than `total` (which is then [`EXACT_TOTAL_UP_TO`]).
    pub total_is_lower_bound: bool,
}

/// A page's total is counted exactly up to this many matches; beyond, the page says "at least".
pub const EXACT_TOTAL_UP_TO: u64 = 1_000;

impl SortKey {
    /// The sort key's value for a record (what a [`PageCursor`] holds).
    pub fn value_of(self, session: &SessionRecord) -> SortValue {
        match self {
            SortKey::StartedAt => SortValue::Int(session.started_at),
            SortKey::LastActivity => SortValue::Int(last_activity_rank(session.last_activity_at)),
            SortKey::User => SortValue::Text(session.user.clone()),
            SortKey::Resource => SortValue::Text(session.resource_name.clone()),
            SortKey::RiskScore => SortValue::Int(i64::from(session.risk.score)),
        }
    }
}

/// Live-session figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub active: u64,
    pub idle: u64,
    pub total_live_duration_seconds: u64,
    /// Live sessions per resource type.
    pub by_type: Vec<(ResourceType, u64)>,
    pub flagged: u64,
    pub ended_since: u64,
    pub gateways_connected: u64,
}

/// What a selector resolved to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolution {
    pub live: Vec<SessionRecord>,
    /// Ids named in the selector that exist but have ended.
    pub already_ended: Vec<String>,
    /// Ids named in the selector that do not exist.
    pub unknown: Vec<String>,
}

/// What reconciling a gateway's snapshot changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconciliation {
    /// Sessions the registry had live on the gateway but the gateway no longer holds: now ended (LOST).
    pub ended: Vec<SessionRecord>,
    /// Sessions the gateway holds that the registry did not know: now registered.
    pub registered: Vec<SessionRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_exactly_at_the_threshold() {
        assert_eq!(live_status(1_000, 1_000 + 299_999, 300_000), SessionStatus::Active);
        assert_eq!(live_status(1_000, 1_000 + 300_000, 300_000), SessionStatus::Idle);
    }

    #[test]
    fn future_activity_from_a_skewed_clock_is_active() {
        assert_eq!(live_status(10_000, 5_000, 300_000), SessionStatus::Active);
    }
}
