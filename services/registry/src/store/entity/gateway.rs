//! The `gateways` table: one row per gateway that ever connected.

use sea_orm::entity::prelude::*;

use crate::domain::GatewayRecord;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gateways")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub connected: bool,
    /// The replica holding the link; `NULL` while disconnected.
    pub replica: Option<String>,
    pub connected_at: i64,
    pub last_seen_at: i64,
    pub agent_version: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The domain record, with the live-session count computed by the caller.
    pub fn into_record(self, live_sessions: u64) -> GatewayRecord {
        GatewayRecord {
            id: self.id,
            connected: self.connected,
            replica: self.replica,
            connected_at: self.connected_at,
            last_seen_at: self.last_seen_at,
            agent_version: self.agent_version,
            live_sessions,
        }
    }
}
