//! The lock set the registry pushes, and the local check of a session start against it.
//!
//! The agent keeps the whole set (each `LockUpdate` replaces it) so that it can refuse a locked user
//! itself, before asking the registry, and while the registry cannot be reached at all. Matching is
//! exact (the registry's selectors compare names exactly too); expiry is judged by the agent's clock.

use std::time::SystemTime;

use vigil_core::{LockTarget, StartFacts};
use vigil_proto::v1::{Lock, LockUpdate, SessionStart};

/// What a locked user reads when the lock carries no message of its own.
const DEFAULT_LOCK_MESSAGE: &str = "Access is locked by an administrator.";

/// The lock set as last accepted, with its version.
#[derive(Debug, Default)]
pub(crate) struct LockSet {
    locks: Vec<Lock>,
    version: u64,
}

impl LockSet {
    /// Takes `update` unless it is older than the set held: a late update must not undo a newer one.
    /// Version 0 means "unknown" (a registry that could not learn the version) and is taken as is.
    /// Returns whether the locks changed (an equal re-send changes nothing).
    pub(crate) fn apply(&mut self, update: LockUpdate) -> bool {
        if update.version != 0 && update.version < self.version {
            tracing::debug!(
                held = self.version,
                received = update.version,
                "ignored an older lock update"
            );
            return false;
        }
        self.version = update.version;
        if self.locks == update.locks {
            return false;
        }
        self.locks = update.locks;
        true
    }

    pub(crate) fn locks(&self) -> &[Lock] {
        &self.locks
    }

    /// The first lock in force at `now` that covers this start on `gateway_id`.
    pub(crate) fn refusing(&self, start: &SessionStart, gateway_id: &str, now: SystemTime) -> Option<&Lock> {
        self.locks
            .iter()
            .find(|lock| in_force(lock, now) && covers(lock, start, gateway_id))
    }
}

/// The sentence a user refused by `lock` reads.
pub(crate) fn message_of(lock: &Lock) -> String {
    if lock.message.trim().is_empty() {
        DEFAULT_LOCK_MESSAGE.to_owned()
    } else {
        lock.message.clone()
    }
}

/// Whether the lock has not expired by `now` (one without an expiry lasts until removed).
fn in_force(lock: &Lock, now: SystemTime) -> bool {
    let Some(expires_at) = &lock.expires_at else {
        return true;
    };
    // A timestamp that does not convert (out of range) is kept in force: refusing by mistake is the
    // safe side of a malformed lock.
    SystemTime::try_from(*expires_at).map_or(true, |expires_at| now < expires_at)
}

/// Whether the lock's target covers this start on `gateway_id`: the rule policy applies at
/// admission (`vigil_core::LockTarget::covers`), on the lock as pushed.
fn covers(lock: &Lock, start: &SessionStart, gateway_id: &str) -> bool {
    let Some(target) = lock.target.as_ref().and_then(|target| target.target.as_ref()) else {
        // A lock without a target names nothing: it refuses nobody.
        return false;
    };
    let Some(target) = LockTarget::from_pushed(target) else {
        tracing::warn!(
            lock_id = lock.id,
            ?target,
            "a lock's network is not valid CIDR; ignored"
        );
        return false;
    };
    target.covers(&StartFacts {
        user: &start.user,
        groups: &start.user_groups,
        resource: &start.resource_name,
        gateway_id,
        device: &start.device,
        client_ip: start.client_ip.parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prost_types::Timestamp;
    use vigil_proto::v1::{LockTarget, ResourceType};

    use vigil_core::Cidr;
    use vigil_proto::v1::lock_target::Target;

    use super::*;

    fn lock(id: &str, target: Target) -> Lock {
        Lock {
            id: id.into(),
            target: Some(LockTarget { target: Some(target) }),
            message: format!("locked by {id}"),
            ..Default::default()
        }
    }

    fn start() -> SessionStart {
        SessionStart {
            user: "alice@acme.example".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh as i32,
            device: "alice-macbook".into(),
            client_ip: "203.0.113.7".into(),
            started_at: None,
            user_groups: vec!["sre".into(), "oncall".into()],
        }
    }

    fn set(locks: Vec<Lock>) -> LockSet {
        let mut set = LockSet::default();
        set.apply(LockUpdate { locks, version: 1 });
        set
    }

    fn refusing_id(set: &LockSet, start: &SessionStart) -> Option<String> {
        set.refusing(start, "gw-fra-01", SystemTime::now())
            .map(|lock| lock.id.clone())
    }

    #[test]
    fn every_kind_of_target_refuses_what_it_names_and_nothing_else() {
        let cases = [
            (
                Target::User("alice@acme.example".into()),
                Target::User("bob@acme.example".into()),
            ),
            (Target::Group("oncall".into()), Target::Group("finance".into())),
            (
                Target::ResourceName("prod-db-01".into()),
                Target::ResourceName("prod-db-02".into()),
            ),
            (
                Target::GatewayId("gw-fra-01".into()),
                Target::GatewayId("gw-ams-01".into()),
            ),
            (Target::Device("alice-macbook".into()), Target::Device("bob-pc".into())),
            (
                Target::Cidr("203.0.113.0/24".into()),
                Target::Cidr("198.51.100.0/24".into()),
            ),
        ];
        for (hit, miss) in cases {
            let described = format!("{hit:?}");
            assert_eq!(
                refusing_id(&set(vec![lock("hit", hit)]), &start()),
                Some("hit".to_owned()),
                "{described}"
            );
            assert_eq!(
                refusing_id(&set(vec![lock("miss", miss)]), &start()),
                None,
                "{described}"
            );
        }
    }

    #[test]
    fn names_match_exactly() {
        let set = set(vec![lock("l", Target::User("Alice@acme.example".into()))]);
        assert_eq!(refusing_id(&set, &start()), None);
        // An unknown device (empty) is not "the device named ''".
        let set = self::set(vec![lock("l", Target::Device(String::new()))]);
        let no_device = SessionStart {
            device: String::new(),
            ..start()
        };
        assert_eq!(refusing_id(&set, &no_device), None);
    }

    #[test]
    fn expired_locks_refuse_nobody_by_the_agents_clock() {
        let now = SystemTime::now();
        let mut expired = lock("old", Target::User("alice@acme.example".into()));
        expired.expires_at = Some(Timestamp::from(now - Duration::from_secs(1)));
        let mut current = lock("new", Target::User("alice@acme.example".into()));
        current.expires_at = Some(Timestamp::from(now + Duration::from_secs(60)));
        let set = set(vec![expired, current]);
        assert_eq!(set.refusing(&start(), "gw", now).map(|l| l.id.as_str()), Some("new"));
        assert_eq!(set.refusing(&start(), "gw", now + Duration::from_secs(61)), None);
    }

    #[test]
    fn an_older_update_never_replaces_a_newer_one() {
        let mut set = LockSet::default();
        let a = lock("a", Target::User("a".into()));
        let b = lock("b", Target::User("b".into()));
        assert!(set.apply(LockUpdate {
            locks: vec![a.clone()],
            version: 5
        }));
        assert!(!set.apply(LockUpdate {
            locks: vec![b.clone()],
            version: 4
        }));
        assert_eq!(set.locks(), std::slice::from_ref(&a));
        // The same version again (a re-send after a reconnection) changes nothing.
        assert!(!set.apply(LockUpdate {
            locks: vec![a.clone()],
            version: 5
        }));
        assert!(set.apply(LockUpdate {
            locks: vec![a.clone(), b.clone()],
            version: 6
        }));
        // Version 0 is "unknown": taken, and whatever comes next is taken too.
        assert!(set.apply(LockUpdate {
            locks: vec![],
            version: 0
        }));
        assert!(set.apply(LockUpdate {
            locks: vec![b.clone()],
            version: 2
        }));
        assert_eq!(set.locks(), [b]);
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let v4 = Cidr::parse_lenient("203.0.113.0/24").unwrap();
        assert!(v4.contains("203.0.113.255".parse().unwrap()));
        assert!(!v4.contains("203.0.114.0".parse().unwrap()));
        // IPv4-mapped IPv6 clients are their IPv4 address.
        assert!(v4.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!v4.contains("2001:db8::1".parse().unwrap()));
        // Host bits in the address are ignored.
        assert!(
            Cidr::parse_lenient("203.0.113.77/24")
                .unwrap()
                .contains("203.0.113.1".parse().unwrap())
        );
        // A bare address is a network of one.
        let one = Cidr::parse_lenient("198.51.100.7").unwrap();
        assert!(one.contains("198.51.100.7".parse().unwrap()));
        assert!(!one.contains("198.51.100.8".parse().unwrap()));
        // /0 is everything of its family, /32 one address.
        assert!(
            Cidr::parse_lenient("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            !Cidr::parse_lenient("0.0.0.0/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Cidr::parse_lenient("10.0.0.1/32")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );

        let v6 = Cidr::parse_lenient("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(
            Cidr::parse_lenient("::/0")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(
            Cidr::parse_lenient("2001:db8::1/128")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );

        for bad in [
            "",
            "/24",
            "203.0.113.0/",
            "203.0.113.0/33",
            "2001:db8::/129",
            "203.0.113.0/+8",
            "203.0.113.0/-1",
            "203.0.113/24",
            "example.org/24",
        ] {
            assert_eq!(Cidr::parse_lenient(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_malformed_lock_refuses_nobody_and_a_missing_message_gets_a_default() {
        let set = set(vec![
            lock("bad", Target::Cidr("not a network".into())),
            Lock {
                id: "empty".into(),
                ..Default::default()
            },
        ]);
        assert_eq!(refusing_id(&set, &start()), None);
        assert_eq!(message_of(&Lock::default()), DEFAULT_LOCK_MESSAGE);
        assert_eq!(message_of(&lock("l", Target::User("a".into()))), "locked by l");
    }
}
