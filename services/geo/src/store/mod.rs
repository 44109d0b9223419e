//! Each user's recent session starts, which the anomaly rules compare a new start with.
//! [`SqlHistoryStore`] implements [`HistoryStore`] with sea-orm on PostgreSQL and SQLite.

mod entity;
pub mod migration;
mod sql;

pub use sql::SqlHistoryStore;

use async_trait::async_trait;
use vigil_runtime::ServiceResult;

use crate::domain::Sighting;

/// Durable history of the geo service. Every method is atomic.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// The user's most recent sightings, newest first (by `at`, ties by insertion), at most
    /// `limit`.
    async fn recent(&self, user: &str, limit: u64) -> ServiceResult<Vec<Sighting>>;

    /// Adds `sighting` to its user's history and forgets all but the user's newest `keep`
    /// sightings. A session already in the user's history is not added again (asking twice about
    /// one start records it once). Returns whether it was added.
    async fn record(&self, sighting: &Sighting, keep: u64) -> ServiceResult<bool>;

    /// Whether the database answers.
    async fn ping(&self) -> ServiceResult<()>;
}
