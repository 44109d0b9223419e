//! The policy service's core, transport-agnostic: the gRPC API, the registry (in the all-in-one
//! binary) and tests all call [`PolicyEngine`].

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_clients::AdmissionPolicy;
use vigil_core::validate;
use vigil_proto::v1 as pb;
use vigil_runtime::bus::ControlBus;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::clock::Clock;
use crate::convert::{effective_to_proto, policy_to_proto, rules_from_proto, scope_from_proto};
use crate::domain::{AuditQuery, AuditRecord, DeleteOutcome, PolicyRecord, Slot, SlotOutcome, StartFacts, Subject};
use crate::lock_book::{LockBook, LockHooks};
use crate::policy_book::PolicyBook;
use crate::rules::{self, EffectiveRules, PolicySet, Sourced};
use crate::store::PolicyStore;

/// Longest description accepted.
const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most session ids released in one call.
const MAX_RELEASE: usize = 100_000;

/// Policies, locks, the rules in force, and admission.
#[derive(Clone)]
pub struct PolicyEngine {
    store: Arc<dyn PolicyStore>,
    clock: Arc<dyn Clock>,
    /// Every policy, held for admission (see [`crate::policy_book`]).
    policies: Arc<PolicyBook>,
    /// The lock set admission refuses by (see [`crate::locks`]).
    locks: Arc<LockBook>,
    /// Where covered sessions are ended, once attached.
    lock_hooks: Arc<LockHooks>,
    /// Where lock sets and policy-set versions are published and followed, once attached.
    bus: Arc<OnceLock<Arc<dyn ControlBus>>>,
}

/// What a refused or flagged user or reviewer reads, and the verdict.
struct Decision {
    verdict: pb::AdmissionVerdict,
    reason: String,
    evict: Vec<String>,
    policy_id: Option<String>,
}

impl Decision {
    /// The answer to a request; `risk_pending` is the request's (see `AdmitRequest.risk_pending`).
    fn into_proto(self, risk_pending: bool) -> pb::AdmitResponse {
        let decided = self.verdict != pb::AdmissionVerdict::RiskNeeded;
        pb::AdmitResponse {
            verdict: self.verdict as i32,
            reason: self.reason,
            evict_session_ids: self.evict,
            policy_id: self.policy_id.unwrap_or_default(),
            decided_without_risk: risk_pending && decided,
        }
    }

    /// Nothing decided: the rules in force look at the risk score, which is still pending.
    fn risk_needed() -> Self {
        Self {
            verdict: pb::AdmissionVerdict::RiskNeeded,
            reason: String::new(),
            evict: Vec::new(),
            policy_id: None,
        }
    }
}

impl PolicyEngine {
    /// An engine on `store` and `clock`. Policies and locks are stored, and admitted by, at once;
    /// to publish changes and end the sessions a new lock covers, attach a bus
    /// ([`PolicyEngine::attach_bus`]) and a terminator ([`PolicyEngine::attach_terminator`]), and
    /// follow other replicas' changes with [`PolicyEngine::start_refresh`]. An engine that does
    /// not follow them sees another's change within [`crate::policy_book::MAX_HELD_AGE`].
    pub fn new(store: Arc<dyn PolicyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            policies: Arc::default(),
            locks: Arc::default(),
            lock_hooks: Arc::default(),
            bus: Arc::default(),
        }
    }

    /// Publishes lock sets and policy-set versions on this bus after every change, and follows
    /// other replicas' there (with [`PolicyEngine::start_refresh`]). Returns false if one was
    /// attached.
    pub fn attach_bus(&self, bus: Arc<dyn ControlBus>) -> bool {
        self.bus.set(bus).is_ok()
    }

    pub(crate) fn bus(&self) -> Option<&Arc<dyn ControlBus>> {
        self.bus.get()
    }

    /// Keeps the held lock set and policies current until `shutdown`: follows other replicas'
    /// changes on the attached bus, and checks both versions every few seconds.
    pub fn start_refresh(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let locks = self.start_lock_refresh(shutdown.clone());
        let policies = self.start_policy_refresh(shutdown);
        tokio::spawn(async move {
            let _ = tokio::join!(locks, policies);
        })
    }

    pub(crate) fn policy_book(&self) -> &PolicyBook {
        &self.policies
    }

    pub(crate) fn lock_book(&self) -> &LockBook {
        &self.locks
    }

    pub(crate) fn lock_hooks(&self) -> &LockHooks {
        &self.lock_hooks
    }

    pub fn store(&self) -> &Arc<dyn PolicyStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Decides whether a session may start. In order: a lock in force that covers the start (its
    /// user, one of the user's groups, the resource, the gateway, the device, or a network holding
    /// the client address) refuses with the lock's message; a risk score at or above the deny
    /// threshold refuses (and takes no slot); then the concurrency limit — the slot is taken atomically
    /// with counting, so concurrent starts of one user on any number of replicas never exceed
    /// it — refuses (DENY_NEW) or names older sessions to end (END_OLDEST); then a risk score at
    /// or above the flag threshold admits flagged. Admitting a session that holds a slot already
    /// changes nothing. A start geo could not assess carries score 0: it is never refused for
    /// risk (geo is advisory; see the registry's admission).
    pub async fn admit(&self, request: &pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse> {
        if request.risk_pending && (request.risk.is_some() || request.location.is_some()) {
            return Err(ServiceError::invalid(
                "risk and location must be unset while risk_pending: the assessment is still pending",
            ));
        }
        Ok(self.decide(request).await?.into_proto(request.risk_pending))
    }

    /// The decision on a start (see [`PolicyEngine::admit`]).
    async fn decide(&self, request: &pb::AdmitRequest) -> ServiceResult<Decision> {
        let session_id = validate::session_id("session_id", &request.session_id)?;
        let start = request
            .start
            .as_ref()
            .ok_or_else(|| ServiceError::invalid("start is required"))?;
        let user = validate::required_name("start.user", &start.user)?;
        let resource = validate::required_name("start.resource_name", &start.resource_name)?;
        validate::resource_type("start.resource_type", start.resource_type)?;
        let groups = groups("start.user_groups", &start.user_groups)?;
        let started_at = validate::optional_timestamp("start.started_at", start.started_at.as_ref())?;
        let facts = StartFacts {
            user: &user,
            groups: &groups,
            resource: &resource,
            gateway_id: &request.gateway_id,
            device: &start.device,
            client_ip: client_ip("start.client_ip", &start.client_ip)?,
        };
        if let Some(lock) = self.lock_covering(&facts).await? {
            tracing::info!(session = %session_id, lock = %lock.id, target = %lock.target, "start refused by a lock");
            return Ok(Decision {
                verdict: pb::AdmissionVerdict::Deny,
                reason: lock.message,
                evict: Vec::new(),
                policy_id: None,
            });
        }
        let subject = Subject {
            user: &user,
            groups: &groups,
            resource: &resource,
        };
        let rules = self.effective_rules(subject).await?;
        let now = self.clock.now_millis();

        if request.risk_pending && (rules.deny_risk_score.value.is_some() || rules.flag_risk_score.value.is_some()) {
            return Ok(Decision::risk_needed());
        }
        let risk = request.risk.clone().unwrap_or_default();
        if let Some(refusal) = refused_for_risk(&rules, &risk) {
            return Ok(refusal);
        }

        let slot = Slot {
            session_id,
            user,
            // The gateway's clock may be ahead: never in the future.
            started_at: started_at.map_or(now, |at| at.min(now)),
            created_at: now,
        };
        let limit = rules.concurrency_limit();
        let evict = match self.store.take_slot(&slot, limit).await? {
            SlotOutcome::Taken { evicted } => evicted,
            SlotOutcome::AlreadyHeld => Vec::new(),
            SlotOutcome::Full { held } => {
                let max = limit.map_or(held, |limit| limit.max);
                return Ok(Decision {
                    verdict: pb::AdmissionVerdict::Deny,
                    reason: too_many_sessions(held, max),
                    evict: Vec::new(),
                    policy_id: rules.max_concurrent_sessions.source.clone(),
                });
            }
        };
        Ok(admitted(&rules, &risk, evict))
    }

    /// These sessions ended: their slots are freed (and their idle warnings forgotten).
    /// Idempotent; ids that are not session ids hold no slot and are skipped.
    pub async fn release(&self, session_ids: &[String]) -> ServiceResult<u64> {
        if session_ids.len() > MAX_RELEASE {
            return Err(ServiceError::invalid(format!(
                "{} session ids in one call; at most {MAX_RELEASE} are allowed",
                session_ids.len()
            )));
        }
        // Normalised as admission normalises them. A malformed id is refused like every other bad
        // input: the registry only ever sends the ids of sessions it admitted.
        let ids: Vec<String> = session_ids
            .iter()
            .map(|id| validate::session_id("session_ids[]", id))
            .collect::<Result<_, _>>()?;
        self.store.release_slots(&ids).await
    }

    /// Creates a policy on behalf of `actor`, and records the attempt in the audit trail.
    pub async fn create(&self, actor: &str, request: &pb::CreatePolicyRequest) -> ServiceResult<pb::Policy> {
        let result = self.create_unaudited(actor, request).await;
        let target = match (&result, scope_from_proto(request.scope.as_ref())) {
            (Ok(policy), _) => format!("policy {} ({})", policy.id, describe_scope(policy.scope.as_ref())),
            (Err(_), Ok(scope)) => format!("new policy ({scope})"),
            (Err(_), Err(_)) => "new policy (invalid scope)".to_owned(),
        };
        self.audit(actor, "policy.create", target, &result).await;
        if result.is_ok() {
            self.policies_changed().await;
        }
        result
    }

    async fn create_unaudited(&self, actor: &str, request: &pb::CreatePolicyRequest) -> ServiceResult<pb::Policy> {
        let scope = scope_from_proto(request.scope.as_ref())?;
        let rules = rules_from_proto(request.rules.as_ref())?;
        rules::validate(&rules)?;
        let policy = PolicyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            scope,
            rules,
            description: description(&request.description)?,
            updated_by: actor.to_owned(),
            updated_at: self.clock.now_millis(),
        };
        self.store.create_policy(&policy).await?;
        tracing::info!(policy = %policy.id, scope = %policy.scope, actor, "policy created");
        Ok(policy_to_proto(&policy))
    }

    pub async fn get(&self, id: &str) -> ServiceResult<pb::Policy> {
        let id = policy_id(id)?;
        let policy = self
            .store
            .get_policy(&id)
            .await?
            .ok_or_else(|| ServiceError::not_found("policy", id))?;
        Ok(policy_to_proto(&policy))
    }

    /// Every policy, most general first.
    pub async fn list(&self) -> ServiceResult<pb::ListPoliciesResponse> {
        let policies = self.store.list_policies().await?;
        Ok(pb::ListPoliciesResponse {
            policies: policies.iter().map(policy_to_proto).collect(),
        })
    }

    /// Replaces a policy's rules and description on behalf of `actor`, and records the attempt in
    /// the audit trail.
    pub async fn update(&self, actor: &str, request: &pb::UpdatePolicyRequest) -> ServiceResult<pb::Policy> {
        let result = self.update_unaudited(actor, request).await;
        let target = match &result {
            Ok(policy) => format!("policy {} ({})", policy.id, describe_scope(policy.scope.as_ref())),
            Err(_) => match policy_id(&request.id) {
                Ok(id) => format!("policy {id}"),
                Err(_) => invalid_id("policy", &request.id),
            },
        };
        self.audit(actor, "policy.update", target, &result).await;
        if result.is_ok() {
            self.policies_changed().await;
        }
        result
    }

    async fn update_unaudited(&self, actor: &str, request: &pb::UpdatePolicyRequest) -> ServiceResult<pb::Policy> {
        let id = policy_id(&request.id)?;
        let rules = rules_from_proto(request.rules.as_ref())?;
        rules::validate(&rules)?;
        let description = description(&request.description)?;
        let policy = self
            .store
            .update_policy(&id, &rules, &description, actor, self.clock.now_millis())
            .await?
            .ok_or_else(|| ServiceError::not_found("policy", id))?;
        tracing::info!(policy = %policy.id, scope = %policy.scope, actor, "policy updated");
        Ok(policy_to_proto(&policy))
    }

    /// Deletes a policy on behalf of `actor` (the global one cannot be deleted), and records the
    /// attempt in the audit trail.
    pub async fn delete(&self, actor: &str, id: &str) -> ServiceResult<()> {
        // Read first, so the trail says which scope the deleted policy covered.
        let known = match policy_id(id) {
            Ok(valid) => self.store.get_policy(&valid).await.ok().flatten(),
            Err(_) => None,
        };
        let result = self.delete_unaudited(actor, id).await;
        let target = match known {
            Some(policy) => format!("policy {} ({})", policy.id, policy.scope),
            None => match policy_id(id) {
                Ok(id) => format!("policy {id}"),
                Err(_) => invalid_id("policy", id),
            },
        };
        self.audit(actor, "policy.delete", target, &result).await;
        if result.is_ok() {
            self.policies_changed().await;
        }
        result
    }

    async fn delete_unaudited(&self, actor: &str, id: &str) -> ServiceResult<()> {
        let id = policy_id(id)?;
        match self.store.delete_policy(&id, actor).await? {
            DeleteOutcome::Deleted => {
                tracing::info!(policy = %id, actor, "policy deleted");
                Ok(())
            }
            DeleteOutcome::NotFound => Err(ServiceError::not_found("policy", id)),
            DeleteOutcome::Global => Err(ServiceError::FailedPrecondition(
                "the global policy cannot be deleted; update its rules instead".into(),
            )),
        }
    }

    /// Appends the outcome of a change to the audit trail. The change is done (or refused) by now,
    /// so a trail that cannot be written is logged loudly rather than undoing it.
    pub(crate) async fn audit<T>(&self, actor: &str, action: &str, target: String, result: &ServiceResult<T>) {
        let event = AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.clock.now_millis(),
            actor: validate::record_text(actor),
            action: action.to_owned(),
            // What the caller sent is kept escaped and capped: a refused 1 MiB id, or one holding a
            // newline and terminal escapes, must not become the trail's text as it is.
            target: validate::record_text(&target),
            succeeded: result.is_ok(),
            detail: validate::record_text(&result.as_ref().err().map(ToString::to_string).unwrap_or_default()),
        };
        if let Err(error) = self.store.record_audit(&event).await {
            tracing::error!(%error, ?event, "could not record a policy change in the audit trail");
        }
    }

    /// The audit trail of policy changes, newest first, a page at a time.
    pub async fn audit_events(
        &self,
        request: &pb::ListAuditEventsRequest,
    ) -> ServiceResult<pb::ListAuditEventsResponse> {
        let limit = match request.page_size {
            0 => DEFAULT_AUDIT_PAGE,
            size @ 1..=MAX_AUDIT_PAGE => size,
            size => {
                return Err(ServiceError::invalid(format!(
                    "page_size {size} is out of range: 0 (the default, {DEFAULT_AUDIT_PAGE}) to {MAX_AUDIT_PAGE}"
                )));
            }
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(decode_audit_token(token)?),
        };
        let query = AuditQuery {
            actor: validate::optional_name("actor", &request.actor)?,
            // Checked as every other `since` is (ListTerminations'): out of range is refused, not ignored.
            since: validate::optional_timestamp("since", request.since.as_ref())?,
            // One more than asked, to know whether another page follows.
            limit: u64::from(limit.unsigned_abs()) + 1,
            after,
        };
        let mut events = self.store.list_audit(&query).await?;
        let more = events.len() > limit.unsigned_abs() as usize;
        events.truncate(limit.unsigned_abs() as usize);
        let next_page_token = match events.last() {
            Some(last) if more => format!("{}.{}", last.at, last.id),
            _ => String::new(),
        };
        Ok(pb::ListAuditEventsResponse {
            events: events.into_iter().map(audit_to_proto).collect(),
            next_page_token,
        })
    }

    /// The rules in force for a user (in some groups) on a resource, and the policies they come from.
    pub async fn effective(&self, request: &pb::GetEffectivePolicyRequest) -> ServiceResult<pb::EffectivePolicy> {
        let user = validate::optional_name("user", &request.user)?.unwrap_or_default();
        let resource = validate::optional_name("resource_name", &request.resource_name)?.unwrap_or_default();
        let groups = groups("user_groups", &request.user_groups)?;
        let subject = Subject {
            user: &user,
            groups: &groups,
            resource: &resource,
        };
        Ok(effective_to_proto(&self.effective_rules(subject).await?))
    }

    /// The rules in force for `subject`, from the held policies: no database round trip unless
    /// they are due a version check (see [`crate::policy_book`]).
    pub async fn effective_rules(&self, subject: Subject<'_>) -> ServiceResult<EffectiveRules> {
        if let Some(policies) = self.policies.current(self.store.as_ref()).await {
            return Ok(policies.effective(subject));
        }
        // No load has succeeded yet: the subject's own policies, read as they were before the book.
        let policies = self.store.applicable_policies(subject).await?;
        Ok(PolicySet::new(policies).effective(subject))
    }
}

/// The registry plugs the engine straight in, in the all-in-one binary.
#[async_trait]
impl AdmissionPolicy for PolicyEngine {
    async fn admit(&self, request: pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse> {
        PolicyEngine::admit(self, &request).await
    }

    async fn release(&self, session_ids: Vec<String>) -> ServiceResult<()> {
        PolicyEngine::release(self, &session_ids).await.map(drop)
    }

    /// The lock set in force with its version: the all-in-one registry's snapshot.
    async fn list_locks(&self) -> ServiceResult<pb::ListLocksResponse> {
        PolicyEngine::list_locks(self, &pb::ListLocksRequest::default()).await
    }
}

/// What a user over the concurrency limit reads.
/// The audit target of a request naming something by an id that is no id: said so, with the
/// start of what was sent (escaped and capped again when recorded).
pub(crate) fn invalid_id(kind: &str, sent: &str) -> String {
    format!("{kind} (invalid id {:?})", validate::truncate(sent))
}

/// A refusal when the start's risk score reaches the deny threshold.
fn refused_for_risk(rules: &EffectiveRules, risk: &pb::Risk) -> Option<Decision> {
    let deny = rules.deny_risk_score.value?;
    (risk.score >= deny).then(|| Decision {
        verdict: pb::AdmissionVerdict::Deny,
        reason: format!(
            "Sign-in refused: this sign-in looks unusual for your account (risk score {} of 100). If it was you, contact your security team.",
            risk.score
        ),
        evict: Vec::new(),
        policy_id: rules.deny_risk_score.source.clone(),
    })
}

/// An admitted start (its slot taken, `evict` the older sessions to end): flagged when its risk score
/// reaches the flag threshold, named after the rule that decided.
fn admitted(rules: &EffectiveRules, risk: &pb::Risk, evict: Vec<String>) -> Decision {
    let decided_by = |rule: &Sourced<_>| rule.source.clone().or_else(|| rules.most_specific().map(str::to_owned));
    if let Some(flag) = rules.flag_risk_score.value
        && risk.score >= flag
    {
        return Decision {
            verdict: pb::AdmissionVerdict::AllowFlagged,
            reason: flagged(risk),
            evict,
            policy_id: decided_by(&rules.flag_risk_score),
        };
    }
    let policy_id = if evict.is_empty() {
        rules.most_specific().map(str::to_owned)
    } else {
        decided_by(&rules.max_concurrent_sessions)
    };
    Decision {
        verdict: pb::AdmissionVerdict::Allow,
        reason: String::new(),
        evict,
        policy_id,
    }
}

fn too_many_sessions(held: u32, max: u32) -> String {
    let sessions = |count: u32| {
        if count == 1 {
            "1 active session".to_owned()
        } else {
            format!("{count} active sessions")
        }
    };
    if held <= max {
        format!(
            "You already have {}, the most your policy allows. Close one and try again.",
            sessions(held)
        )
    } else {
        format!(
            "You already have {}; your policy allows {max}. Close some and try again.",
            sessions(held)
        )
    }
}

/// What a reviewer of a flagged session reads.
fn flagged(risk: &pb::Risk) -> String {
    let reasons: Vec<String> = risk
        .flags
        .iter()
        .map(|flag| {
            if flag.explanation.is_empty() {
                flag.code.clone()
            } else {
                format!("{}: {}", flag.code, flag.explanation)
            }
        })
        .collect();
    if reasons.is_empty() {
        format!(
            "Flagged for review: unusual sign-in (risk score {} of 100).",
            risk.score
        )
    } else {
        format!(
            "Flagged for review: unusual sign-in (risk score {} of 100): {}.",
            risk.score,
            reasons.join("; ")
        )
    }
}

fn groups(field: &str, groups: &[String]) -> ServiceResult<Vec<String>> {
    if groups.len() > validate::MAX_GROUPS {
        return Err(ServiceError::invalid(format!(
            "{field} has {} groups; at most {} are allowed",
            groups.len(),
            validate::MAX_GROUPS
        )));
    }
    groups
        .iter()
        .map(|group| validate::required_name(&format!("{field}[]"), group).map_err(ServiceError::from))
        .collect()
}

/// Audit events per page when the caller does not say, and at most.
const DEFAULT_AUDIT_PAGE: i32 = 50;
const MAX_AUDIT_PAGE: i32 = 1000;

/// `<at>.<id>` of the last event of a page.
pub fn decode_audit_token(token: &str) -> ServiceResult<(i64, String)> {
    token
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| ServiceError::invalid("page_token was not issued by ListAuditEvents"))
}

fn audit_to_proto(event: AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        id: event.id,
        at: Some(vigil_proto::timestamp_from_millis(event.at)),
        actor: event.actor,
        action: event.action,
        target: event.target,
        outcome: if event.succeeded {
            pb::AuditOutcome::Succeeded
        } else {
            pb::AuditOutcome::Failed
        } as i32,
        detail: event.detail,
    }
}

/// A proto scope in the words of [`crate::domain::Scope`]'s `Display`.
fn describe_scope(scope: Option<&pb::PolicyScope>) -> String {
    scope_from_proto(scope).map_or_else(|_| "unknown scope".to_owned(), |scope| scope.to_string())
}

fn description(value: &str) -> ServiceResult<String> {
    let chars = value.chars().count();
    if chars > MAX_DESCRIPTION_LEN {
        return Err(ServiceError::invalid(format!(
            "description is {chars} characters long; at most {MAX_DESCRIPTION_LEN} are allowed"
        )));
    }
    Ok(value.to_owned())
}

fn policy_id(value: &str) -> ServiceResult<String> {
    if value.is_empty() {
        return Err(ServiceError::invalid("id must not be empty"));
    }
    uuid::Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ServiceError::invalid("id is not a policy id (a UUID)"))
}

/// The client address of a start, when it carries one.
fn client_ip(field: &str, value: &str) -> ServiceResult<Option<IpAddr>> {
    if value.is_empty() {
        return Ok(None);
    }
    let normalised = validate::client_ip(field, value)?;
    normalised
        .parse()
        .map(Some)
        .map_err(|_| ServiceError::invalid(format!("{field} is not an IPv4 or IPv6 address")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use vigil_testkit::{TestDatabase, with_database};

    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::{Rules, Scope};
    use crate::watched_store::WatchedStore;

    #[test]
    fn the_limit_message_reads_well() {
        assert_eq!(
            too_many_sessions(3, 3),
            "You already have 3 active sessions, the most your policy allows. Close one and try again."
        );
        assert_eq!(
            too_many_sessions(1, 1),
            "You already have 1 active session, the most your policy allows. Close one and try again."
        );
        assert_eq!(
            too_many_sessions(5, 2),
            "You already have 5 active sessions; your policy allows 2. Close some and try again."
        );
    }

    #[test]
    fn flags_are_explained_to_the_reviewer() {
        let risk = pb::Risk {
            score: 72,
            flags: vec![pb::RiskFlag {
                code: "new_country".into(),
                points: 40,
                explanation: "first sign-in from Japan".into(),
            }],
            assessed: true,
        };
        assert_eq!(
            flagged(&risk),
            "Flagged for review: unusual sign-in (risk score 72 of 100): new_country: first sign-in from Japan."
        );
    }

    #[test]
    fn ids_and_descriptions_are_checked() {
        assert!(policy_id("").is_err());
        assert!(policy_id("nope").is_err());
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(policy_id(&id.to_uppercase()).unwrap(), id);
        assert!(description(&"x".repeat(1025)).is_err());
        assert!(groups("g", &[String::new()]).is_err());
    }

    fn start(user: &str) -> pb::AdmitRequest {
        pb::AdmitRequest {
            session_id: uuid::Uuid::now_v7().to_string(),
            gateway_id: "gw-1".into(),
            start: Some(pb::SessionStart {
                user: user.into(),
                resource_name: "db".into(),
                resource_type: pb::ResourceType::Ssh as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn one_session() -> Rules {
        Rules {
            max_concurrent_sessions: Some(1),
            ..Rules::default()
        }
    }

    /// Admits `user` twice: the first start is allowed, the second refused by a limit of one.
    async fn a_limit_of_one_holds(engine: &PolicyEngine, user: &str) {
        let first = engine.admit(&start(user)).await.unwrap();
        assert_eq!(first.verdict, pb::AdmissionVerdict::Allow as i32, "{first:?}");
        let second = engine.admit(&start(user)).await.unwrap();
        assert_eq!(second.verdict, pb::AdmissionVerdict::Deny as i32, "{second:?}");
        assert!(
            second.reason.starts_with("You already have 1 active session"),
            "{second:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admission_reads_no_policy_rows_once_they_are_held() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let engine = PolicyEngine::new(store.clone(), Arc::new(SystemClock));
            assert_eq!(engine.load_policies().await.unwrap(), 0);
            // A change made here is in force for this replica's next admission.
            let request = pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(pb::policy_scope::Scope::User("ann".into())),
                }),
                rules: Some(crate::convert::rules_to_proto(&one_session())),
                description: String::new(),
            };
            engine.create("test", &request).await.unwrap();
            assert_eq!(engine.held_policy_version(), 1);

            store.policy_rows_forbidden.store(true, Ordering::SeqCst);
            let reads = store.reads();
            a_limit_of_one_holds(&engine, "ann").await;
            assert_eq!(store.reads(), reads, "not even the version is read");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn before_any_load_admission_reads_the_starts_own_policies() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let engine = PolicyEngine::new(store.clone(), Arc::new(SystemClock));
            let policy = PolicyRecord {
                id: uuid::Uuid::now_v7().to_string(),
                scope: Scope::User("bob".into()),
                rules: one_session(),
                description: String::new(),
                updated_by: "test".into(),
                updated_at: 0,
            };
            store.create_policy(&policy).await.unwrap();
            store.set_reads_fail.store(true, Ordering::SeqCst);
            // The set cannot be loaded: bob's own policy is read, never "no rules".
            a_limit_of_one_holds(&engine, "bob").await;
            assert_eq!(engine.held_policy_version(), 0);
        })
        .await;
    }
}
