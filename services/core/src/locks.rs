//! What a lock shuts out, and whether it covers a session start: the one rule policy applies at
//! admission and the agent SDK applies to the locks the registry pushed, also while the registry
//! cannot be reached.

use std::fmt;
use std::net::IpAddr;

use vigil_proto::v1::lock_target::Target;

use crate::cidr::Cidr;

/// What a lock shuts out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockTarget {
    User(String),
    /// Every user who starts a session as a member of this group.
    Group(String),
    Resource(String),
    Gateway(String),
    Device(String),
    /// Every client address inside this network.
    Network(Cidr),
}

/// The kind of a lock's target, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockTargetKind {
    User,
    Group,
    Resource,
    Gateway,
    Device,
    Network,
}

impl LockTargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LockTargetKind::User => "user",
            LockTargetKind::Group => "group",
            LockTargetKind::Resource => "resource",
            LockTargetKind::Gateway => "gateway",
            LockTargetKind::Device => "device",
            LockTargetKind::Network => "cidr",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "user" => LockTargetKind::User,
            "group" => LockTargetKind::Group,
            "resource" => LockTargetKind::Resource,
            "gateway" => LockTargetKind::Gateway,
            "device" => LockTargetKind::Device,
            "cidr" => LockTargetKind::Network,
            _ => return None,
        })
    }
}

impl LockTarget {
    pub fn kind(&self) -> LockTargetKind {
        match self {
            LockTarget::User(_) => LockTargetKind::User,
            LockTarget::Group(_) => LockTargetKind::Group,
            LockTarget::Resource(_) => LockTargetKind::Resource,
            LockTarget::Gateway(_) => LockTargetKind::Gateway,
            LockTarget::Device(_) => LockTargetKind::Device,
            LockTarget::Network(_) => LockTargetKind::Network,
        }
    }

    /// The name, or the network in CIDR notation: what is stored beside the kind.
    pub fn value(&self) -> String {
        match self {
            LockTarget::User(name)
            | LockTarget::Group(name)
            | LockTarget::Resource(name)
            | LockTarget::Gateway(name)
            | LockTarget::Device(name) => name.clone(),
            LockTarget::Network(network) => network.to_string(),
        }
    }

    /// The target of `kind` with the stored `value`; `None` for a network that does not parse
    /// (which no version of this code stores).
    pub fn from_parts(kind: LockTargetKind, value: String) -> Option<Self> {
        Some(match kind {
            LockTargetKind::User => LockTarget::User(value),
            LockTargetKind::Group => LockTarget::Group(value),
            LockTargetKind::Resource => LockTarget::Resource(value),
            LockTargetKind::Gateway => LockTarget::Gateway(value),
            LockTargetKind::Device => LockTarget::Device(value),
            LockTargetKind::Network => LockTarget::Network(Cidr::parse(&value).ok()?),
        })
    }

    /// Whether a session start with these facts is one this target names.
    pub fn covers(&self, start: &StartFacts<'_>) -> bool {
        match self {
            LockTarget::User(user) => start.user == user,
            LockTarget::Group(group) => start.groups.iter().any(|member_of| member_of == group),
            LockTarget::Resource(resource) => start.resource == resource,
            LockTarget::Gateway(gateway) => start.gateway_id == gateway,
            // A lock on no device names nothing (the agent reads locks it did not check).
            LockTarget::Device(device) => !device.is_empty() && start.device == device,
            LockTarget::Network(network) => start.client_ip.is_some_and(|ip| network.contains(ip)),
        }
    }
}

impl fmt::Display for LockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockTarget::Network(network) => write!(f, "network {network}"),
            target => write!(f, "{} {:?}", target.kind().as_str(), target.value()),
        }
    }
}

/// The facts of a session start that locks match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartFacts<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub resource: &'a str,
    pub gateway_id: &'a str,
    pub device: &'a str,
    /// `None` when the start carries no address.
    pub client_ip: Option<IpAddr>,
}

impl LockTarget {
    /// A pushed lock's target, as the agent reads it: networks leniently (see
    /// [`Cidr::parse_lenient`]); `None` for a network that cannot be read at all.
    pub fn from_pushed(target: &Target) -> Option<Self> {
        Some(match target {
            Target::User(user) => LockTarget::User(user.clone()),
            Target::Group(group) => LockTarget::Group(group.clone()),
            Target::ResourceName(resource) => LockTarget::Resource(resource.clone()),
            Target::GatewayId(gateway) => LockTarget::Gateway(gateway.clone()),
            Target::Device(device) => LockTarget::Device(device.clone()),
            Target::Cidr(network) => LockTarget::Network(Cidr::parse_lenient(network)?),
        })
    }
}
