//! `locks` arguments and the requests they become.

use clap::{Args, Subcommand};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::{CreateLockRequest, ListLocksRequest, LockTarget};

use crate::cli::{parse_full_id, parse_name, parse_rule_duration};

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

#[derive(Debug, Clone, Args)]
pub struct LockDeleteArgs {
    /// The lock's full id; `locks list --wide` shows it.
    #[arg(value_parser = parse_lock_id)]
    pub id: String,
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

fn parse_lock_id(s: &str) -> Result<String, String> {
    parse_full_id(s, "lock", "locks list --wide")
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
        assert_eq!(delete.id, ID_1);
    }

    #[test]
    fn lock_flags_are_checked() {
        for args in [
            &["locks", "create"][..],
            &["locks", "create", "--user", "a", "--group", "g"],
            &["locks", "create", "--user", ""],
            &["locks", "create", "--user", "a", "--for", "90"],
            &["locks", "delete"],
            &["locks", "delete", "c27a4dbc"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "locks", "delete", "c27a4dbc"]).expect_err("short id");
        assert!(error.to_string().contains("locks list --wide"), "{error}");
    }
}
