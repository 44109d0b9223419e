//! What every Vigil service and the agent SDK agree on, as plain values and functions: no gRPC
//! server, no database, no bus — only the contract's types (`vigil-proto`) and the standard library.
//!
//! - [`cidr`]: [`Cidr`], IP networks, as selectors and locks name them.
//! - [`selector`]: [`Selector`], which live sessions an action covers.
//! - [`validate`]: field limits and the checks of what callers send, with messages for a person.
//! - [`locks`]: what a lock shuts out ([`LockTarget`]) and whether it covers a session start.
//! - [`topics`]: the bus channels services talk on.
//! - [`Invalid`]: why a value was refused (the runtime turns it into `INVALID_ARGUMENT`).

pub mod cidr;
pub mod locks;
pub mod selector;
pub mod topics;
pub mod validate;

pub use cidr::{Cidr, CidrError};
pub use locks::{LockTarget, LockTargetKind, StartFacts};
pub use selector::Selector;

/// Milliseconds since the Unix epoch, UTC. All times in Vigil's records are kept this way: portable
/// between PostgreSQL and SQLite, cheap to compare and index.
pub type EpochMillis = i64;

/// Now, in milliseconds since the Unix epoch (how every Vigil service keeps time in its records).
pub fn now_millis() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// How finely lists order sessions by last activity: input within the same 10 seconds ranks equal
/// (then by id). The registry's store indexes this rank rather than the exact time, which changes
/// with every activity report (see the registry migration `m20261124_000301_activity_buckets`);
/// the policy sweeper reads in this order and must know how coarse it is.
pub const LAST_ACTIVITY_ORDER_MS: i64 = 10_000;

/// A last activity time's rank in the list order (truncating division, as SQL's integer `/`).
pub fn last_activity_rank(last_activity_at: EpochMillis) -> i64 {
    last_activity_at / LAST_ACTIVITY_ORDER_MS
}

/// A value refused by a check in this crate; the message names the field and says what is wrong,
/// because it goes back to a person. The runtime maps it to `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Invalid {
    /// The complaint.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The result of a check.
pub type Checked<T> = Result<T, Invalid>;
