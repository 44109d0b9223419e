//! Terminations and their commands as plain values.

pub use vigil_proto::v1::{CommandOutcome, DeliveryState, EndReason};

pub use vigil_core::EpochMillis;

/// What a termination asked to end (kept for the audit trail as asked, not as resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorRecord {
    Ids(Vec<String>),
    User(String),
    Gateway(String),
    Resource(String),
    All {
        idle_only: bool,
    },
    Group(String),
    Device(String),
    /// A network in CIDR notation, normalised ("203.0.113.0/24").
    Cidr(String),
}

/// One request to end sessions: who, what, why, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationRecord {
    /// UUID.
    pub id: String,
    /// Who asked (the authenticated caller; never a field the client sets).
    pub actor: String,
    pub selector: SelectorRecord,
    pub reason: EndReason,
    /// What the disconnected users see.
    pub user_message: String,
    /// A note for the record.
    pub note: String,
    pub created_at: EpochMillis,
}

/// One session's part of a termination, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// UUID; what the agent acknowledges.
    pub id: String,
    pub termination_id: String,
    pub session_id: String,
    pub gateway_id: String,
    pub user: String,
    pub reason: EndReason,
    pub user_message: String,
    /// PENDING, DELIVERED, ACKNOWLEDGED, FAILED or ALREADY_ENDED.
    pub state: DeliveryState,
    /// Why FAILED / ALREADY_ENDED, or the agent's detail.
    pub detail: String,
    /// Times sent (published) so far.
    pub attempts: u32,
    pub created_at: EpochMillis,
    /// When it should next be (re)sent, while PENDING or DELIVERED.
    pub next_attempt_at: Option<EpochMillis>,
    pub delivered_at: Option<EpochMillis>,
    pub acknowledged_at: Option<EpochMillis>,
}

impl CommandRecord {
    /// Still waiting for the gateway.
    pub fn is_open(&self) -> bool {
        matches!(self.state, DeliveryState::Pending | DeliveryState::Delivered)
    }
}

/// Per-state counts of a termination's commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: u32,
    pub delivered: u32,
    pub acknowledged: u32,
    pub failed: u32,
    pub already_ended: u32,
}

impl DeliveryCounts {
    pub fn total(&self) -> u32 {
        self.pending + self.delivered + self.acknowledged + self.failed + self.already_ended
    }
}

/// What a registry replica reports about one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReport {
    pub command_id: String,
    /// The gateway whose link carried it: a report from another gateway's link is ignored.
    pub gateway_id: String,
    /// DELIVERED or ACKNOWLEDGED.
    pub state: DeliveryState,
    /// With ACKNOWLEDGED.
    pub outcome: CommandOutcome,
    pub detail: String,
    pub at: EpochMillis,
}

/// A page request over the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminationQuery {
    pub actor: Option<String>,
    pub reason: Option<EndReason>,
    pub session_id: Option<String>,
    pub since: Option<EpochMillis>,
    /// 1..=1000.
    pub limit: u64,
    /// Continue after this (created_at, id), newest first.
    pub before: Option<(EpochMillis, String)>,
}

/// A page of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationPage {
    pub terminations: Vec<(TerminationRecord, DeliveryCounts)>,
    /// Set when there may be more: the (created_at, id) of the last row.
    pub next: Option<(EpochMillis, String)>,
}
