//! `locks` arguments and the requests they become.

use clap::{Args, Subcommand};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{CreateLockRequest, ListLocksRequest, LockTarget, SessionSelector};

use crate::args::{parse_name, parse_rule_duration};
use crate::ids::parse_id;

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// Lock a target out: its live sessions end (reason `locked`) and new ones are refused with --message,
    /// until the lock expires (--for) or is removed.
    Create(CreateLockArgs),
    /// List the locks in force (with --all, expired ones too), oldest first.
    List(LocksListArgs),
    /// Remove a lock: what it refused is admitted again.
    Delete(LockDeleteArgs),
}

/// What a lock shuts out: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LockTargetArgs {
    /// A user (exact name).
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Every user who starts a session as a member of this group.
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// A resource (exact name).
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,

    /// A gateway (exact id).
    #[arg(long, value_parser = parse_name)]
    pub gateway: Option<String>,

    /// A device (exact name).
    #[arg(long, value_parser = parse_name)]
    pub device: Option<String>,

    /// Every client address in this network ("203.0.113.0/24", "2001:db8::/32"; a bare address is just it).
    #[arg(long, value_name = "NETWORK", value_parser = parse_name)]
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CreateLockArgs {
    #[command(flatten)]
    pub target: LockTargetArgs,

    /// How long the lock lasts ("1h", "30m", "2d"); without it, until removed.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_rule_duration)]
    pub lock_for: Option<prost_types::Duration>,

    /// What refused (and disconnected) users see (default: the server's message).
    #[arg(long)]
    pub message: Option<String>,

    /// Why, for the record ("suspected credential theft, ticket SOC-1234").
    #[arg(long)]
    pub reason: Option<String>,

    /// Do not ask before ending the target's live sessions (needed when stdin is not a terminal and some
    /// would end).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show what the lock would end and stop: nothing is locked, nothing asked.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LocksListArgs {
    /// Also list locks that have expired.
    #[arg(long)]
    pub all: bool,

    /// Show full lock ids (which `locks delete` takes).
    #[arg(long)]
    pub wide: bool,
}

/// `locks delete`: one lock by id, or every lock in force on one target.
#[derive(Debug, Clone, Args)]
#[command(group(
    clap::ArgGroup::new("which")
        .required(true)
        .args(["id", "user", "group", "resource", "gateway", "device", "cidr"])
))]
pub struct LockDeleteArgs {
    /// The lock's id, or any unique part of its start or end (the ID column).
    #[arg(value_parser = parse_id)]
    pub id: Option<String>,

    /// Every lock on this user.
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Every lock on this group.
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// Every lock on this resource.
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,

    /// Every lock on this gateway.
    #[arg(long, value_parser = parse_name)]
    pub gateway: Option<String>,

    /// Every lock on this device.
    #[arg(long, value_parser = parse_name)]
    pub device: Option<String>,

    /// Every lock on this network (as it was given to `locks create`).
    #[arg(long, value_name = "NETWORK", value_parser = parse_name)]
    pub cidr: Option<String>,

    /// Succeed when there is no such lock (a second delete, a script run twice).
    #[arg(long)]
    pub ignore_not_found: bool,

    /// Show which locks would be removed and stop.
    #[arg(long)]
    pub dry_run: bool,
}

impl LockDeleteArgs {
    /// The target the flags name, if they name one rather than an id.
    pub fn target(&self) -> Option<LockTarget> {
        let target = if let Some(user) = &self.user {
            LockOn::User(user.clone())
        } else if let Some(group) = &self.group {
            LockOn::Group(group.clone())
        } else if let Some(resource) = &self.resource {
            LockOn::ResourceName(resource.clone())
        } else if let Some(gateway) = &self.gateway {
            LockOn::GatewayId(gateway.clone())
        } else if let Some(device) = &self.device {
            LockOn::Device(device.clone())
        } else {
            LockOn::Cidr(self.cidr.clone()?)
        };
        Some(LockTarget { target: Some(target) })
    }
}

/// The live sessions a lock on `target` ends, as a session selector (for the preview).
pub fn sessions_of(target: &LockTarget) -> Option<SessionSelector> {
    let target = match target.target.clone()? {
        LockOn::User(user) => Target::User(user),
        LockOn::Group(group) => Target::Group(group),
        LockOn::ResourceName(resource) => Target::ResourceName(resource),
        LockOn::GatewayId(gateway) => Target::GatewayId(gateway),
        LockOn::Device(device) => Target::Device(device),
        LockOn::Cidr(cidr) => Target::Cidr(cidr),
    };
    Some(SessionSelector { target: Some(target) })
}

impl LockTargetArgs {
    pub fn to_target(&self) -> LockTarget {
        // clap guarantees exactly one; the order below only matters if that ever changed.
        let target = if let Some(user) = &self.user {
            LockOn::User(user.clone())
        } else if let Some(group) = &self.group {
            LockOn::Group(group.clone())
        } else if let Some(resource) = &self.resource {
            LockOn::ResourceName(resource.clone())
        } else if let Some(gateway) = &self.gateway {
            LockOn::GatewayId(gateway.clone())
        } else if let Some(device) = &self.device {
            LockOn::Device(device.clone())
        } else {
            LockOn::Cidr(self.cidr.clone().unwrap_or_default())
        };
        LockTarget { target: Some(target) }
    }
}

impl CreateLockArgs {
    pub fn to_request(&self) -> CreateLockRequest {
        CreateLockRequest {
            target: Some(self.target.to_target()),
            message: self.message.clone().unwrap_or_default(),
            ttl: self.lock_for,
            reason: self.reason.clone().unwrap_or_default(),
        }
    }
}

impl LocksListArgs {
    pub fn to_request(&self) -> ListLocksRequest {
        ListLocksRequest {
            include_expired: self.all,
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{CreateLockRequest, LockTarget};

    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::testing::*;

    fn locks(args: &[&str]) -> LocksCommand {
        let mut full = vec!["locks"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Locks(command) => command,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn lock_flags_become_the_request() {
        let LocksCommand::Create(create) = locks(&[
            "create",
            "--user",
            "alice@example.com",
            "--for",
            "1h 30m",
            "--message",
            "Contact the SOC",
            "--reason",
            "SOC-1234",
        ]) else {
            panic!("a create")
        };
        assert_eq!(
            create.to_request(),
            CreateLockRequest {
                target: Some(LockTarget {
                    target: Some(LockOn::User("alice@example.com".into()))
                }),
                message: "Contact the SOC".into(),
                ttl: Some(prost_types::Duration {
                    seconds: 5400,
                    nanos: 0
                }),
                reason: "SOC-1234".into(),
            }
        );
        let target = |flag: &str, value: &str| match locks(&["create", flag, value]) {
            LocksCommand::Create(create) => create.to_request().target.and_then(|t| t.target),
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(
            target("--group", "contractors"),
            Some(LockOn::Group("contractors".into()))
        );
        assert_eq!(
            target("--resource", "prod-db"),
            Some(LockOn::ResourceName("prod-db".into()))
        );
        assert_eq!(
            target("--gateway", "gw-eu-1"),
            Some(LockOn::GatewayId("gw-eu-1".into()))
        );
        assert_eq!(target("--device", "kiosk-7"), Some(LockOn::Device("kiosk-7".into())));
        assert_eq!(
            target("--cidr", "2001:db8::/32"),
            Some(LockOn::Cidr("2001:db8::/32".into()))
        );
        let LocksCommand::Create(bare) = locks(&["create", "--user", "bob"]) else {
            panic!("a create")
        };
        let request = bare.to_request();
        assert_eq!(
            (request.ttl, request.message.as_str(), request.reason.as_str()),
            (None, "", "")
        );

        let LocksCommand::List(list) = locks(&["list", "--all", "--wide"]) else {
            panic!("a list")
        };
        assert!(list.to_request().include_expired && list.wide);
        let LocksCommand::List(list) = locks(&["list"]) else {
            panic!("a list")
        };
        assert!(!list.to_request().include_expired);
        let LocksCommand::Delete(delete) = locks(&["delete", ID_1]) else {
            panic!("a delete")
        };
        assert_eq!(delete.id.as_deref(), Some(ID_1));
    }

    #[test]
    fn lock_flags_are_checked() {
        for args in [
            &["locks", "create"][..],
            &["locks", "create", "--user", "a", "--group", "g"],
            &["locks", "create", "--user", ""],
            &["locks", "create", "--user", "a", "--for", "90"],
            &["locks", "delete"],
            &["locks", "delete", "c27a4dbc", "--user", "bob"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        // What the ID column shows is an id `locks delete` takes.
        let LocksCommand::Delete(delete) = locks(&["delete", "c27a4dbc", "--ignore-not-found"]) else {
            panic!("parsed as something else")
        };
        assert_eq!(delete.id.as_deref(), Some("c27a4dbc"));
        assert!(delete.ignore_not_found);
        let LocksCommand::Delete(delete) = locks(&["delete", "--user", "bob"]) else {
            panic!("parsed as something else")
        };
        assert_eq!(delete.id, None);
        assert!(delete.target().is_some());
    }
}
