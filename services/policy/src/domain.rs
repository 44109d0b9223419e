//! Policies, their scopes and rules, concurrency slots and locks as plain values. No gRPC and no SQL
//! here: the store and the service translate at the edges.

use std::fmt;
use std::time::Duration;

pub use vigil_core::{Cidr, EpochMillis, LockTarget, LockTargetKind, StartFacts};

/// What a policy applies to. One policy per scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every session.
    Global,
    /// Sessions of users in this group.
    Group(String),
    /// Sessions of this user.
    User(String),
    /// Sessions to this resource.
    Resource(String),
}

/// The kind of a scope. Ordered most general first, which is also how policies are listed; the
/// precedence among the kinds that apply to one session is user > resource > group > global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeKind {
    Global,
    Group,
    Resource,
    User,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Global => "global",
            ScopeKind::Group => "group",
            ScopeKind::Resource => "resource",
            ScopeKind::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "global" => ScopeKind::Global,
            "group" => ScopeKind::Group,
            "resource" => ScopeKind::Resource,
            "user" => ScopeKind::User,
            _ => return None,
        })
    }
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Global => ScopeKind::Global,
            Scope::Group(_) => ScopeKind::Group,
            Scope::User(_) => ScopeKind::User,
            Scope::Resource(_) => ScopeKind::Resource,
        }
    }

    /// The group, user or resource name; empty for the global scope.
    pub fn name(&self) -> &str {
        match self {
            Scope::Global => "",
            Scope::Group(name) | Scope::User(name) | Scope::Resource(name) => name,
        }
    }

    /// The scope of `kind` named `name` (the name is ignored for the global scope).
    pub fn from_parts(kind: ScopeKind, name: String) -> Self {
        match kind {
            ScopeKind::Global => Scope::Global,
            ScopeKind::Group => Scope::Group(name),
            ScopeKind::Resource => Scope::Resource(name),
            ScopeKind::User => Scope::User(name),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            scope => write!(f, "{} {:?}", scope.kind().as_str(), scope.name()),
        }
    }
}

/// What to do when a new session would exceed a user's concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConcurrencyAction {
    /// Refuse the new session.
    DenyNew,
    /// Admit it and end the user's oldest sessions.
    EndOldest,
}

/// The rules of one policy. `None` means "not set here: inherit from a less specific policy".
///
/// For the durations and the concurrency limit, an explicit zero means "off" (no warning, no idle
/// timeout, no maximum duration, no limit), so a specific policy can lift a general one's rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub idle_warning_after: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_session_duration: Option<Duration>,
    pub max_concurrent_sessions: Option<u32>,
    pub concurrency_action: Option<ConcurrencyAction>,
    /// Refuse starts whose risk score is at least this (1–100).
    pub deny_risk_score: Option<u32>,
    /// Flag starts whose risk score is at least this (1–100).
    pub flag_risk_score: Option<u32>,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// UUID.
    pub id: String,
    pub scope: Scope,
    pub rules: Rules,
    /// A note for people.
    pub description: String,
    /// Who last changed it (the caller; never a field the client fills in).
    pub updated_by: String,
    pub updated_at: EpochMillis,
}

/// Every policy as of one version of the policy set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionedPolicies {
    /// The policy-set version these were read at (or after): it increases with every change.
    pub version: u64,
    /// Most general first, as [`crate::store::PolicyStore::list_policies`] returns them.
    pub policies: Vec<PolicyRecord>,
}

/// What policy scopes match on: a session's user, the user's groups, and the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub resource: &'a str,
}

/// One live session counting against its user's concurrency limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub session_id: String,
    pub user: String,
    /// When the session started: "the oldest" sessions are ended first.
    pub started_at: EpochMillis,
    /// When the slot was taken (admission time); reconciliation leaves young slots alone.
    pub created_at: EpochMillis,
}

/// A concurrency limit in force for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyLimit {
    /// At least 1.
    pub max: u32,
    pub action: ConcurrencyAction,
}

/// What taking a slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    /// The slot was taken; these older sessions lost theirs and are to be ended (END_OLDEST).
    Taken { evicted: Vec<String> },
    /// The session held a slot already (a repeated admission): nothing changed.
    AlreadyHeld,
    /// The user is at the limit and the action is DENY_NEW: nothing changed.
    Full { held: u32 },
}

/// What deleting a policy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// The global policy is never deleted.
    Global,
}

/// An idle warning to record before it is sent: at most one per session and idle period, an idle
/// period being identified by the session's last activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleWarningRecord {
    pub session_id: String,
    pub last_activity_at: EpochMillis,
}

/// One entry of the audit trail of policy and lock changes: who asked for what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub at: EpochMillis,
    /// The authenticated caller.
    pub actor: String,
    /// `policy.create`, `policy.update`, `policy.delete`, `lock.create` or `lock.delete`.
    pub action: String,
    /// The policy or lock (id and scope or target, as far as known).
    pub target: String,
    pub succeeded: bool,
    /// Why it failed; empty when it succeeded.
    pub detail: String,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events of this actor.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<EpochMillis>,
    /// At most this many events.
    pub limit: u64,
    /// Continue after this event (its time and id), exclusive.
    pub after: Option<(EpochMillis, String)>,
}

/// A stored lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    /// UUID.
    pub id: String,
    pub target: LockTarget,
    /// What a refused (or disconnected) user reads.
    pub message: String,
    /// Why, for the record.
    pub reason: String,
    /// The authenticated caller who created it.
    pub created_by: String,
    pub created_at: EpochMillis,
    /// When it stops; `None`: until removed.
    pub expires_at: Option<EpochMillis>,
}

impl LockRecord {
    /// Whether the lock holds at `now` (a lock stops at its expiry, exclusive of nothing after).
    pub fn in_force(&self, now: EpochMillis) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

/// The locks as of one version of the lock set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSet {
    /// The lock-set version these were read at (or after): it increases with every change.
    pub version: u64,
    /// Oldest first.
    pub locks: Vec<LockRecord>,
}

impl LockSet {
    /// The locks in force at `now`, oldest first.
    pub fn in_force(&self, now: EpochMillis) -> impl Iterator<Item = &LockRecord> {
        self.locks.iter().filter(move |lock| lock.in_force(now))
    }

    /// The oldest lock in force at `now` that covers the start, if any.
    pub fn covering(&self, start: &StartFacts<'_>, now: EpochMillis) -> Option<&LockRecord> {
        self.in_force(now).find(|lock| lock.target.covers(start))
    }
}
