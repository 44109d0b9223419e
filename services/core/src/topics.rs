//! The bus channels Vigil's services talk on. One place for their names, so the publisher and the
//! subscribers of a channel cannot drift apart.

/// Every change to a session, published by the registry replica that made it (`SessionChanges`:
/// one or more `SessionEvent`s, in order).
pub const SESSIONS: &str = "sessions";

/// The whole lock set, versioned, published by policy after every change (`LockUpdate`).
pub const LOCKS: &str = "locks";

/// The policy-set version after a change, published by the policy replica that made it
/// (`PolicySetUpdate`); policy replicas re-read their held policies when it is newer.
pub const POLICIES: &str = "policies";

/// The channel carrying a gateway's commands (`GatewayDispatch`), followed by the registry replica
/// holding that gateway's link.
pub fn gateway(gateway_id: &str) -> String {
    format!("gateway.{gateway_id}")
}
