//! Locks: standing refusals of new sessions for a user, a group, a resource, a gateway, a device
//! or a network, with an optional expiry and a message for whoever is refused.
//!
//! **Creating** a lock stores it (taking a new lock-set version in the same transaction), records
//! the change in the audit trail, publishes the whole set in force on the bus channel
//! [`topics::LOCKS`] as a `LockUpdate` carrying that version (registry replicas pass it on to the
//! gateways), and ends the live sessions the lock covers through termination (reason LOCKED, the
//! lock's message). If the ending fails the lock still stands: the sweeper ends what locks in force
//! cover on its next run, which also catches a session admitted in a race with the lock's creation.
//!
//! **Admission** consults the set held in memory ([`LockBook`](crate::lock_book::LockBook)) before any other rule, so a lock
//! costs a start no database round trip. The held set is refreshed after this replica's own
//! changes, when another replica's update arrives on the bus, and at least every few seconds
//! (a version check) so a lost bus message delays a change by seconds at most. Expiry is judged by
//! the policy's clock at admission, so an expired lock stops refusing at once; the sweeper then
//! announces the smaller set (a new version) so holders drop it too.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::{topics, validate};
use vigil_proto::timestamp_from_millis;
use vigil_proto::v1 as pb;
use vigil_runtime::bus::ControlBus;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{EpochMillis, LockRecord, LockSet, LockTarget, StartFacts};
use crate::follow::{self, Follow, Step};
use crate::rules::MAX_RULE_DURATION;
use crate::service::PolicyEngine;
use vigil_clients::SessionTerminator;

/// What a refused user reads when the lock's creator wrote nothing.
pub const DEFAULT_LOCK_MESSAGE: &str = "Your access is locked by security; contact your administrator.";

/// Longest message and reason accepted (the message is shown at a gateway's prompt; the reason
/// goes into termination's note, which takes 1024 characters).
pub const MAX_LOCK_MESSAGE_LEN: usize = 512;
pub const MAX_LOCK_REASON_LEN: usize = 512;
/// Shortest lock with an expiry: anything shorter is a mistake (unset means "until removed").
pub const MIN_LOCK_TTL: Duration = Duration::from_secs(1);
/// Longest lock with an expiry, like the longest rule duration; longer means "until removed".
pub const MAX_LOCK_TTL: Duration = MAX_RULE_DURATION;

/// Longest termination note accepted (termination's own limit).
const MAX_NOTE_LEN: usize = 1024;
/// How often the refresher checks the lock-set version.
pub const LOCK_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often the sweeper's leader publishes the set in force even when nothing changed, so a holder
/// that started (or lost a message) since the last change has it within this long.
pub const LOCK_REPUBLISH_INTERVAL: Duration = Duration::from_secs(10);
/// How long creating a lock waits for termination to take the covered sessions in hand; the lock
/// stands either way, and the sweeper ends what is left.
const END_COVERED_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Requests → locks, locks → messages
// ---------------------------------------------------------------------------------------------

/// The lock a `CreateLockRequest` asks for, created by `actor` at `now`.
pub fn lock_from_request(request: &pb::CreateLockRequest, actor: &str, now: EpochMillis) -> ServiceResult<LockRecord> {
    let target = target_from_proto(request.target.as_ref())?;
    let ttl = ttl_from_proto(request.ttl.as_ref())?;
    Ok(LockRecord {
        id: uuid::Uuid::now_v7().to_string(),
        target,
        message: message(&request.message)?,
        reason: reason(&request.reason)?,
        created_by: actor.to_owned(),
        created_at: now,
        expires_at: ttl.map(|ttl| now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))),
    })
}

/// A lock's target as a caller sent it: names as session facts are named, gateway ids as gateways
/// name themselves, networks parsed (host bits set and `/0` are refused; see `Cidr::parse`).
pub fn target_from_proto(target: Option<&pb::LockTarget>) -> ServiceResult<LockTarget> {
    use pb::lock_target::Target;
    let target = target.and_then(|target| target.target.as_ref()).ok_or_else(|| {
        ServiceError::invalid("target is required: a user, group, resource_name, gateway_id, device or cidr")
    })?;
    Ok(match target {
        Target::User(name) => LockTarget::User(validate::required_name("target.user", name)?),
        Target::Group(name) => LockTarget::Group(validate::required_name("target.group", name)?),
        Target::ResourceName(name) => LockTarget::Resource(validate::required_name("target.resource_name", name)?),
        Target::GatewayId(id) => LockTarget::Gateway(validate::gateway_id("target.gateway_id", id)?),
        Target::Device(name) => LockTarget::Device(validate::required_name("target.device", name)?),
        Target::Cidr(network) => LockTarget::Network(validate::network("target.cidr", network)?),
    })
}

pub fn target_to_proto(target: &LockTarget) -> pb::LockTarget {
    use pb::lock_target::Target;
    let target = match target {
        LockTarget::User(name) => Target::User(name.clone()),
        LockTarget::Group(name) => Target::Group(name.clone()),
        LockTarget::Resource(name) => Target::ResourceName(name.clone()),
        LockTarget::Gateway(id) => Target::GatewayId(id.clone()),
        LockTarget::Device(name) => Target::Device(name.clone()),
        LockTarget::Network(network) => Target::Cidr(network.to_string()),
    };
    pb::LockTarget { target: Some(target) }
}

pub fn lock_to_proto(lock: &LockRecord) -> pb::Lock {
    pb::Lock {
        id: lock.id.clone(),
        target: Some(target_to_proto(&lock.target)),
        message: lock.message.clone(),
        expires_at: lock.expires_at.map(timestamp_from_millis),
        created_by: lock.created_by.clone(),
        created_at: Some(timestamp_from_millis(lock.created_at)),
        reason: lock.reason.clone(),
    }
}

/// The sessions a lock's target covers, as termination and the registry select them.
pub fn selector_for(target: &LockTarget) -> pb::SessionSelector {
    use pb::session_selector::Target;
    let target = match target {
        LockTarget::User(name) => Target::User(name.clone()),
        LockTarget::Group(name) => Target::Group(name.clone()),
        LockTarget::Resource(name) => Target::ResourceName(name.clone()),
        LockTarget::Gateway(id) => Target::GatewayId(id.clone()),
        LockTarget::Device(name) => Target::Device(name.clone()),
        LockTarget::Network(network) => Target::Cidr(network.to_string()),
    };
    pb::SessionSelector { target: Some(target) }
}

/// The termination note of sessions ended for `lock`: which lock, whose, and why — over gRPC the
/// termination service records this service as the actor, so the note says on whose behalf.
pub fn termination_note(lock: &LockRecord) -> String {
    let mut note = format!("lock {} by {}", lock.id, lock.created_by);
    if !lock.reason.is_empty() {
        note.push_str(": ");
        note.push_str(&lock.reason);
    }
    if note.chars().count() > MAX_NOTE_LEN {
        note = note.chars().take(MAX_NOTE_LEN - 1).collect();
        note.push('…');
    }
    note
}

/// The request that ends what `selector` selects for `lock`.
pub fn termination_request(lock: &LockRecord, selector: pb::SessionSelector) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector: Some(selector),
        reason: pb::EndReason::Locked as i32,
        user_message: lock.message.clone(),
        note: termination_note(lock),
        expected_count: None,
    }
}

/// The set in force at `now`, as holders receive it.
pub fn lock_update(set: &LockSet, now: EpochMillis) -> pb::LockUpdate {
    pb::LockUpdate {
        locks: set.in_force(now).map(lock_to_proto).collect(),
        version: set.version,
    }
}

/// Publishes the set in force at `now` on [`topics::LOCKS`]. Best effort: holders also re-read it
/// (registry replicas when a link opens, policy replicas every few seconds).
pub async fn publish(bus: &dyn ControlBus, set: &LockSet, now: EpochMillis) {
    let update = lock_update(set, now);
    let count = update.locks.len();
    match bus.publish(topics::LOCKS, update.encode_to_vec().into()).await {
        Ok(()) => tracing::debug!(version = set.version, locks = count, "lock set published"),
        Err(error) => {
            tracing::warn!(version = set.version, %error, "could not publish the lock set; holders pick it up on their next refresh")
        }
    }
}

fn ttl_from_proto(value: Option<&prost_types::Duration>) -> ServiceResult<Option<Duration>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.seconds < 0 || value.nanos < 0 {
        return Err(ServiceError::invalid("ttl must not be negative"));
    }
    if value.nanos >= 1_000_000_000 {
        return Err(ServiceError::invalid(format!(
            "ttl has {} nanoseconds; at most 999,999,999 are allowed",
            value.nanos
        )));
    }
    let seconds = u64::try_from(value.seconds).unwrap_or(0);
    if seconds > MAX_LOCK_TTL.as_secs() {
        return Err(ServiceError::invalid(format!(
            "ttl is {seconds} seconds; at most 366 days is allowed (leave it unset for a lock that lasts until removed)"
        )));
    }
    let ttl = Duration::new(seconds, u32::try_from(value.nanos).unwrap_or(0));
    if ttl < MIN_LOCK_TTL {
        return Err(ServiceError::invalid(
            "ttl must be at least 1 second (leave it unset for a lock that lasts until removed)",
        ));
    }
    Ok(Some(ttl))
}

fn message(value: &str) -> ServiceResult<String> {
    if value.trim().is_empty() {
        return Ok(DEFAULT_LOCK_MESSAGE.to_owned());
    }
    let chars = value.chars().count();
    if chars > MAX_LOCK_MESSAGE_LEN {
        return Err(ServiceError::invalid(format!(
            "message is {chars} characters long; at most {MAX_LOCK_MESSAGE_LEN} are allowed"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "message must not contain control characters (it is shown on one line at the gateway)",
        ));
    }
    Ok(value.to_owned())
}

fn reason(value: &str) -> ServiceResult<String> {
    let chars = value.chars().count();
    if chars > MAX_LOCK_REASON_LEN {
        return Err(ServiceError::invalid(format!(
            "reason is {chars} characters long; at most {MAX_LOCK_REASON_LEN} are allowed"
        )));
    }
    Ok(value.to_owned())
}

fn lock_id(value: &str) -> ServiceResult<String> {
    if value.is_empty() {
        return Err(ServiceError::invalid("id must not be empty"));
    }
    uuid::Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ServiceError::invalid("id is not a lock id (a UUID)"))
}

// ---------------------------------------------------------------------------------------------
// The engine's lock operations
// ---------------------------------------------------------------------------------------------

impl PolicyEngine {
    /// Ends the sessions a new lock covers through this. Returns false if one was attached.
    pub fn attach_terminator(&self, terminator: Arc<dyn SessionTerminator>) -> bool {
        self.lock_hooks().terminator.set(terminator).is_ok()
    }

    /// The lock set version admission holds now.
    pub fn held_lock_version(&self) -> u64 {
        self.lock_book().version()
    }

    /// Keeps the held lock set current until `shutdown`: reloads when an update with a newer
    /// version arrives on the attached bus (or the bus reconnects), and checks the version every
    /// [`LOCK_POLL_INTERVAL`] so another replica's change is seen even when its message is lost.
    pub(crate) fn start_lock_refresh(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let follow = Follow {
            channel: topics::LOCKS,
            poll: LOCK_POLL_INTERVAL,
            on_gap: Step::Check,
            what: "lock updates",
        };
        follow::start::<pb::LockUpdate, _, _, _>(
            self.clone(),
            follow,
            PolicyEngine::held_lock_version,
            |engine, step| async move {
                let store = engine.store().as_ref();
                let now = engine.clock().now_millis();
                let refreshed = match step {
                    Step::Reload => engine.lock_book().reload(store, now).await,
                    Step::Check => engine.lock_book().check(store, now).await,
                };
                if let Err(error) = refreshed {
                    tracing::warn!(%error, "could not refresh the lock set; will retry");
                }
            },
            shutdown,
        )
    }

    /// The oldest lock in force that covers the start, if any.
    pub(crate) async fn lock_covering(&self, start: &StartFacts<'_>) -> ServiceResult<Option<LockRecord>> {
        let now = self.clock().now_millis();
        let set = self.lock_book().current(self.store().as_ref(), now).await?;
        Ok(set.covering(start, now).cloned())
    }

    /// Creates a lock on behalf of `actor`, records the attempt in the audit trail, publishes the
    /// new set and ends the live sessions the lock covers.
    pub async fn create_lock(&self, actor: &str, request: &pb::CreateLockRequest) -> ServiceResult<pb::Lock> {
        let now = self.clock().now_millis();
        let result = match lock_from_request(request, actor, now) {
            Ok(lock) => self.store().create_lock(&lock).await.map(|version| (lock, version)),
            Err(error) => Err(error),
        };
        let target = match (&result, target_from_proto(request.target.as_ref())) {
            (Ok((lock, _)), _) => format!("lock {} ({})", lock.id, lock.target),
            (Err(_), Ok(target)) => format!("new lock ({target})"),
            (Err(_), Err(_)) => "new lock (invalid target)".to_owned(),
        };
        self.audit(actor, "lock.create", target, &result).await;
        let (lock, version) = result?;
        tracing::info!(lock = %lock.id, target = %lock.target, actor, version, expires_at = ?lock.expires_at, "lock created");
        self.lock_set_changed().await;
        self.end_covered(actor, &lock).await;
        Ok(lock_to_proto(&lock))
    }

    /// Locks in force now, or every lock (with `include_expired`), oldest first.
    pub async fn list_locks(&self, request: &pb::ListLocksRequest) -> ServiceResult<pb::ListLocksResponse> {
        let in_force_at = (!request.include_expired).then(|| self.clock().now_millis());
        let set = self.store().locks(in_force_at).await?;
        Ok(pb::ListLocksResponse {
            locks: set.locks.iter().map(lock_to_proto).collect(),
            version: set.version,
        })
    }

    /// Removes a lock on behalf of `actor`, records the attempt in the audit trail, and publishes
    /// the new set.
    pub async fn delete_lock(&self, actor: &str, id: &str) -> ServiceResult<()> {
        let result = match lock_id(id) {
            Ok(id) => match self.store().delete_lock(&id, actor).await {
                Ok(Some(deleted)) => Ok(deleted),
                Ok(None) => Err(ServiceError::not_found("lock", id)),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        let target = match &result {
            Ok((lock, _)) => format!("lock {} ({})", lock.id, lock.target),
            Err(_) => match lock_id(id) {
                Ok(id) => format!("lock {id}"),
                Err(_) => crate::service::invalid_id("lock", id),
            },
        };
        self.audit(actor, "lock.delete", target, &result).await;
        let (lock, version) = result?;
        tracing::info!(lock = %lock.id, target = %lock.target, actor, version, "lock removed");
        self.lock_set_changed().await;
        Ok(())
    }

    /// After a committed change: reload the held set (this replica admits by it at once) and
    /// publish it.
    async fn lock_set_changed(&self) {
        let now = self.clock().now_millis();
        match self.lock_book().reload(self.store().as_ref(), now).await {
            Ok(set) => {
                if let Some(bus) = self.bus() {
                    publish(bus.as_ref(), &set, now).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not re-read the lock set after a change; it is picked up on the next refresh")
            }
        }
    }

    /// Ends the live sessions `lock` covers. Failure is logged, not returned: the lock stands, and
    /// the sweeper ends what locks in force cover.
    async fn end_covered(&self, actor: &str, lock: &LockRecord) {
        let Some(terminator) = self.lock_hooks().terminator.get() else {
            tracing::warn!(lock = %lock.id, "no termination service attached: the sessions this lock covers are left to the sweeper");
            return;
        };
        let request = termination_request(lock, selector_for(&lock.target));
        match tokio::time::timeout(END_COVERED_TIMEOUT, terminator.terminate_request(actor, request)).await {
            Ok(Ok(termination)) => tracing::info!(
                lock = %lock.id,
                termination = %termination.id,
                sessions = termination.session_count,
                "ending the sessions the lock covers"
            ),
            // A user, gateway or resource the registry has never seen: nothing to end.
            Ok(Err(ServiceError::NotFound { .. })) => {
                tracing::debug!(lock = %lock.id, "the lock covers no session the registry knows")
            }
            Ok(Err(error)) => {
                tracing::warn!(lock = %lock.id, %error, "could not end the sessions the lock covers; the lock stands and the sweeper retries")
            }
            Err(_) => tracing::warn!(
                lock = %lock.id,
                "termination did not answer within {END_COVERED_TIMEOUT:?}; the lock stands and the sweeper retries"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cidr;

    fn request(target: pb::lock_target::Target) -> pb::CreateLockRequest {
        pb::CreateLockRequest {
            target: Some(pb::LockTarget { target: Some(target) }),
            ..Default::default()
        }
    }

    fn refusal(request: &pb::CreateLockRequest) -> String {
        match lock_from_request(request, "soc@acme.example", 1_000) {
            Err(ServiceError::InvalidArgument(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_lock_takes_its_creator_defaults_and_expiry() {
        use pb::lock_target::Target;
        let mut asked = request(Target::Cidr("2001:0db8::/32".into()));
        asked.ttl = Some(prost_types::Duration {
            seconds: 3600,
            nanos: 500_000_000,
        });
        asked.reason = "SOC-1234".into();
        let lock = lock_from_request(&asked, "soc@acme.example", 1_000).unwrap();
        assert_eq!(lock.target, LockTarget::Network(Cidr::parse("2001:db8::/32").unwrap()));
        assert_eq!(lock.message, DEFAULT_LOCK_MESSAGE);
        assert_eq!(lock.created_by, "soc@acme.example");
        assert_eq!(lock.expires_at, Some(1_000 + 3_600_500));
        assert_eq!(lock.reason, "SOC-1234");
        let forever = lock_from_request(&request(Target::User("alice".into())), "soc", 5).unwrap();
        assert_eq!(forever.expires_at, None);
        assert_eq!(lock_to_proto(&forever).target, Some(target_to_proto(&forever.target)));
    }

    #[test]
    fn bad_requests_are_refused_precisely() {
        use pb::lock_target::Target;
        assert_eq!(
            refusal(&pb::CreateLockRequest::default()),
            "target is required: a user, group, resource_name, gateway_id, device or cidr"
        );
        assert_eq!(
            refusal(&request(Target::User(" ".into()))),
            "target.user must not be empty"
        );
        assert_eq!(
            refusal(&request(Target::Group(String::new()))),
            "target.group must not be empty"
        );
        assert_eq!(
            refusal(&request(Target::ResourceName("x".repeat(300)))),
            "target.resource_name is 300 characters long; at most 256 are allowed"
        );
        assert!(
            refusal(&request(Target::GatewayId("gw 1".into()))).starts_with("target.gateway_id \"gw 1\" contains ' '")
        );
        assert_eq!(
            refusal(&request(Target::Device(String::new()))),
            "target.device must not be empty"
        );
        assert_eq!(
            refusal(&request(Target::Cidr("10.0.0.1/8".into()))),
            "target.cidr \"10.0.0.1/8\" has bits set past the prefix length; did you mean 10.0.0.0/8?"
        );
        assert!(refusal(&request(Target::Cidr("::/0".into()))).contains("covers every address"));

        let with = |change: fn(&mut pb::CreateLockRequest)| {
            let mut asked = request(Target::User("alice".into()));
            change(&mut asked);
            refusal(&asked)
        };
        assert_eq!(
            with(|r| r.ttl = Some(prost_types::Duration { seconds: 0, nanos: 0 })),
            "ttl must be at least 1 second (leave it unset for a lock that lasts until removed)"
        );
        assert_eq!(
            with(|r| r.ttl = Some(prost_types::Duration { seconds: -5, nanos: 0 })),
            "ttl must not be negative"
        );
        assert!(
            with(|r| r.ttl = Some(prost_types::Duration {
                seconds: 367 * 86_400,
                nanos: 0
            }))
            .contains("at most 366 days")
        );
        assert_eq!(
            with(|r| r.message = "m".repeat(513)),
            "message is 513 characters long; at most 512 are allowed"
        );
        assert!(with(|r| r.message = "line\nbreak".into()).starts_with("message must not contain control characters"));
        assert_eq!(
            with(|r| r.reason = "r".repeat(513)),
            "reason is 513 characters long; at most 512 are allowed"
        );
    }

    #[test]
    fn lock_ids_are_uuids() {
        assert_eq!(message_of(lock_id("")), "id must not be empty");
        assert_eq!(message_of(lock_id("nope")), "id is not a lock id (a UUID)");
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(lock_id(&id.to_uppercase()).unwrap(), id);
    }

    fn message_of<T: std::fmt::Debug>(result: ServiceResult<T>) -> String {
        match result {
            Err(ServiceError::InvalidArgument(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_note_says_which_lock_whose_and_why_within_bounds() {
        use pb::lock_target::Target;
        let mut asked = request(Target::User("alice".into()));
        asked.reason = "suspected credential theft".into();
        let lock = lock_from_request(&asked, "soc@acme.example", 0).unwrap();
        assert_eq!(
            termination_note(&lock),
            format!("lock {} by soc@acme.example: suspected credential theft", lock.id)
        );
        let long = LockRecord {
            created_by: "x".repeat(900),
            reason: "y".repeat(512),
            ..lock
        };
        assert_eq!(termination_note(&long).chars().count(), 1024);
        let ended = termination_request(&long, selector_for(&long.target));
        assert_eq!(ended.reason, pb::EndReason::Locked as i32);
        assert_eq!(ended.user_message, DEFAULT_LOCK_MESSAGE);
    }

    #[test]
    fn starts_are_covered_by_what_their_locks_name() {
        let groups = vec!["contractors".to_owned()];
        let start = StartFacts {
            user: "alice",
            groups: &groups,
            resource: "prod-db",
            gateway_id: "gw-1",
            device: "alice-mbp",
            client_ip: Some("203.0.113.7".parse().unwrap()),
        };
        let lock = |target: LockTarget, expires_at: Option<i64>| LockRecord {
            id: uuid::Uuid::now_v7().to_string(),
            target,
            message: "m".into(),
            reason: String::new(),
            created_by: "soc".into(),
            created_at: 0,
            expires_at,
        };
        for target in [
            LockTarget::User("alice".into()),
            LockTarget::Group("contractors".into()),
            LockTarget::Resource("prod-db".into()),
            LockTarget::Gateway("gw-1".into()),
            LockTarget::Device("alice-mbp".into()),
            LockTarget::Network(Cidr::parse("203.0.113.0/24").unwrap()),
        ] {
            assert!(target.covers(&start), "{target}");
        }
        for target in [
            LockTarget::User("bob".into()),
            LockTarget::Group("engineering".into()),
            LockTarget::Resource("wiki".into()),
            LockTarget::Gateway("gw-2".into()),
            LockTarget::Device("bob-mbp".into()),
            LockTarget::Network(Cidr::parse("198.51.100.0/24").unwrap()),
        ] {
            assert!(!target.covers(&start), "{target}");
        }
        let without_address = StartFacts {
            client_ip: None,
            ..start
        };
        assert!(!LockTarget::Network(Cidr::parse("203.0.113.0/24").unwrap()).covers(&without_address));

        let set = LockSet {
            version: 3,
            locks: vec![
                lock(LockTarget::User("alice".into()), Some(100)),
                lock(LockTarget::Group("contractors".into()), None),
            ],
        };
        assert_eq!(
            set.covering(&start, 50).unwrap().target,
            LockTarget::User("alice".into())
        );
        // At its expiry the first lock no longer holds; the second still does.
        assert_eq!(
            set.covering(&start, 100).unwrap().target,
            LockTarget::Group("contractors".into())
        );
        let update = lock_update(&set, 100);
        assert_eq!((update.version, update.locks.len()), (3, 1));
    }
}
