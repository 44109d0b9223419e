//! Which live sessions an action covers: what an operator's kill, a lock's enforcement and the
//! termination service's resolution through the registry all speak of.

use crate::cidr::Cidr;

/// Which live sessions an action covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Ids(Vec<String>),
    User(String),
    Gateway(String),
    Resource(String),
    All {
        idle_only: bool,
    },
    /// Sessions whose user was in this group when the session started (as the gateway reported it).
    Group(String),
    Device(String),
    /// Sessions whose client address lies in this network.
    Cidr(Cidr),
}
