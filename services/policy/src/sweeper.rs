//! The sweeper: the leader among policy replicas warns idle users and ends sessions past their
//! idle timeout or maximum duration.
//!
//! **By index.** It never loads every session: it asks the registry for live sessions least
//! recently active first and stops at the first one active more recently than the earliest idle
//! action any policy can take; likewise oldest first for maximum durations. Each candidate's rules
//! are worked out from all policies, loaded once per sweep.
//!
//! **Once per idle period.** A warning is recorded — session and last activity — before it is
//! published, and only if that session's idle period has not been warned about: a successor
//! taking over mid-sweep never warns twice for the same period, and new activity opens a new
//! period that can be warned about again. (A warning whose publication fails is not re-sent:
//! warnings are a courtesy; the disconnection that follows is what counts.)
//!
//! **Ends** go to the termination service, which ends a session once however often it is asked;
//! the sweeper still remembers what it asked to end during a term, so it does not ask again while
//! the kill is on its way.
//!
//! **Locks**: each sweep first announces locks that have expired (a new lock-set version,
//! published, so holders drop them) and republishes the set every
//! [`LOCK_REPUBLISH_INTERVAL`](locks::LOCK_REPUBLISH_INTERVAL) even when nothing changed (for holders
//! that started since); then it ends the live sessions that locks in force still cover — ones whose
//! ending failed when the lock was created, or that were admitted in a race with it.
//!
//! **Leadership** is checked before every action (see [`crate::lease`]): a replica that stops
//! leading stops acting at once, even mid-sweep.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_core::{LAST_ACTIVITY_ORDER_MS, topics};
use vigil_proto::v1 as pb;
use vigil_runtime::bus::ControlBus;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::clock::Clock;
use crate::domain::{EpochMillis, IdleWarningRecord, Subject};
use crate::lease::{Leadership, LeaseKeeper, SWEEPER_LEASE};
use crate::locks;
use crate::rules::{IdleVerdict, PolicySet};
use crate::settings::PolicySettings;
use crate::store::PolicyStore;
use vigil_clients::SessionTerminator;
use vigil_clients::registry::{LiveOrder, LiveQuery, LiveSession, SessionSource};
use vigil_clients::termination::SWEEPER_ACTOR;

/// Most sessions ended in one termination request.
const END_BATCH: usize = 1000;
/// Users looked at per step of slot reconciliation.
const RECONCILE_BATCH: u64 = 500;
/// Idle-warning records older than this are forgotten (the sessions have long ended, or sit idle
/// with no timeout in force; then, at worst, they are warned once more).
const WARNING_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What one sweeper instance has done, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweeperStatus {
    /// Whether it leads now.
    pub leading: bool,
    /// Terms of leadership it has started.
    pub terms: u64,
    /// Sweeps it has completed as leader.
    pub sweeps: u64,
    /// Idle warnings it has sent.
    pub warned: u64,
    /// Sessions it has asked to end.
    pub ended: u64,
    /// Concurrency slots it freed because their sessions were gone.
    pub reconciled: u64,
    /// Times it announced expired locks (each a new lock-set version).
    pub lock_expiries: u64,
    /// The last sweep's failure, cleared by a successful sweep.
    pub last_error: Option<String>,
}

/// A running sweeper.
pub struct SweeperHandle {
    status: watch::Receiver<SweeperStatus>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SweeperHandle {
    pub fn status(&self) -> SweeperStatus {
        self.status.borrow().clone()
    }

    pub fn is_leading(&self) -> bool {
        self.status.borrow().leading
    }

    /// Waits until `condition` holds for the status, or `timeout` passes; returns the status then
    /// and whether the condition held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&SweeperStatus) -> bool,
    ) -> (SweeperStatus, bool) {
        let mut status = self.status.clone();
        let reached = tokio::time::timeout(timeout, status.wait_for(|status| condition(status)))
            .await
            .is_ok_and(|outcome| outcome.is_ok());
        let current = status.borrow().clone();
        (current, reached)
    }

    /// Stops after the sweep in progress, then gives up the lease so another replica takes over
    /// at once.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "sweeper task failed");
        }
    }

    /// Stops dead, as a crash would: the lease is not given up and expires in its own time.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The sweeper of one replica.
pub struct Sweeper {
    store: Arc<dyn PolicyStore>,
    sessions: Arc<dyn SessionSource>,
    terminator: Arc<dyn SessionTerminator>,
    bus: Arc<dyn ControlBus>,
    clock: Arc<dyn Clock>,
    settings: PolicySettings,
}

/// Why a sweep stopped early.
#[derive(Debug)]
enum Interrupted {
    /// Leadership ended: act no more.
    LostLeadership,
    Failed(ServiceError),
}

impl From<ServiceError> for Interrupted {
    fn from(error: ServiceError) -> Self {
        Interrupted::Failed(error)
    }
}

/// Leadership, checked before each action.
struct Guard<'a> {
    leadership: &'a Leadership,
    term: u64,
}

impl Guard<'_> {
    fn check(&self) -> Result<(), Interrupted> {
        if self.leadership.holds(self.term) {
            Ok(())
        } else {
            Err(Interrupted::LostLeadership)
        }
    }
}

/// What the leader remembers during one term.
struct TermMemory {
    number: u64,
    /// Sessions asked to end (and still seen live since).
    asked_to_end: HashSet<String>,
    /// When the lock set was last published by this leader (see [`locks::LOCK_REPUBLISH_INTERVAL`]).
    locks_published_at: Option<Instant>,
}

/// What one sweep did.
#[derive(Debug, Default)]
struct SweepReport {
    warned: u64,
    ended: u64,
    reconciled: u64,
    lock_expiries: u64,
    /// When this sweep published the lock set, if it did.
    locks_published_at: Option<Instant>,
    /// Sessions asked to end that were still seen live in this sweep.
    still_live: HashSet<String>,
}

impl Sweeper {
    pub fn new(
        store: Arc<dyn PolicyStore>,
        sessions: Arc<dyn SessionSource>,
        terminator: Arc<dyn SessionTerminator>,
        bus: Arc<dyn ControlBus>,
        clock: Arc<dyn Clock>,
        settings: PolicySettings,
    ) -> Self {
        Self {
            store,
            sessions,
            terminator,
            bus,
            clock,
            settings,
        }
    }

    /// Starts competing for leadership and, while leading, sweeping every `sweep_interval`,
    /// until `shutdown` (or [`SweeperHandle::stop`]).
    pub fn start(self, shutdown: CancellationToken) -> SweeperHandle {
        let stop = shutdown.child_token();
        let (status_sender, status) = watch::channel(SweeperStatus::default());
        // Unique per process: two replicas given the same name must not share the lease.
        let holder = format!("{}/{}", self.settings.replica, uuid::Uuid::new_v4().simple());
        let keeper = LeaseKeeper::new(self.store.clone(), SWEEPER_LEASE, holder, self.settings.lease_ttl);
        let (term, leadership) = keeper.leadership();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                // One task for both, so that aborting it (a crash) stops both; the lease is given
                // up only once sweeping has stopped, so no successor overlaps a sweep in progress.
                let lease_stop = CancellationToken::new();
                let sweeping = async {
                    self.run(leadership, status_sender, stop).await;
                    lease_stop.cancel();
                };
                tokio::join!(keeper.run(term, lease_stop.clone()), sweeping);
            }
        });
        SweeperHandle { status, stop, task }
    }

    async fn run(&self, mut leadership: Leadership, status: watch::Sender<SweeperStatus>, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.settings.sweep_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut memory: Option<TermMemory> = None;
        let mut next_reconcile = Instant::now() + self.settings.reconcile_interval;
        loop {
            let known = memory.as_ref().map(|memory| memory.number);
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
                // A new leader (one whose predecessor died mid-sweep) sweeps at once.
                () = leadership.new_term(known) => {}
            }
            let Some(term) = leadership.current() else {
                memory = None;
                status.send_if_modified(|status| std::mem::replace(&mut status.leading, false));
                continue;
            };
            let memory = match &mut memory {
                Some(memory) if memory.number == term.number => memory,
                stale => {
                    status.send_modify(|status| status.terms += 1);
                    stale.insert(TermMemory {
                        number: term.number,
                        asked_to_end: HashSet::new(),
                        locks_published_at: None,
                    })
                }
            };
            // Also after a sweep that saw the term lapse while a slow renewal was on its way.
            status.send_if_modified(|status| !std::mem::replace(&mut status.leading, true));
            let guard = Guard {
                leadership: &leadership,
                term: term.number,
            };
            let reconcile = Instant::now() >= next_reconcile;
            if reconcile {
                next_reconcile = Instant::now() + self.settings.reconcile_interval;
            }
            let mut report = SweepReport::default();
            // One trace per sweep: the kills it asks for (termination `Terminate` calls) join it.
            let span = tracing::info_span!("policy.sweep", term = term.number, reconcile);
            let outcome = self
                .sweep(&guard, memory, reconcile, &mut report)
                .instrument(span)
                .await;
            crate::metrics::sweeper_run(match &outcome {
                Ok(()) => "completed",
                Err(Interrupted::LostLeadership) => "lost_leadership",
                Err(Interrupted::Failed(_)) => "failed",
            });
            memory.asked_to_end = std::mem::take(&mut report.still_live);
            if report.locks_published_at.is_some() {
                memory.locks_published_at = report.locks_published_at;
            }
            status.send_modify(|status| {
                status.warned += report.warned;
                status.ended += report.ended;
                status.reconciled += report.reconciled;
                status.lock_expiries += report.lock_expiries;
                match &outcome {
                    Ok(()) => {
                        status.sweeps += 1;
                        status.last_error = None;
                    }
                    Err(Interrupted::LostLeadership) => status.leading = false,
                    Err(Interrupted::Failed(error)) => status.last_error = Some(error.to_string()),
                }
            });
            match outcome {
                Ok(()) => {}
                Err(Interrupted::LostLeadership) => {
                    tracing::info!("leadership ended during a sweep; stopped acting");
                }
                Err(Interrupted::Failed(error)) => tracing::warn!(%error, "sweep failed; will retry"),
            }
        }
        status.send_modify(|status| status.leading = false);
    }

    /// One sweep: locks, idle sessions, then over-long ones, then (when due) slot reconciliation.
    async fn sweep(
        &self,
        guard: &Guard<'_>,
        memory: &TermMemory,
        reconcile: bool,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        let now = self.clock.now_millis();
        self.sweep_locks(now, guard, memory, report).await?;
        let policies = PolicySet::new(self.store.list_policies().await?);
        self.sweep_idle(&policies, now, guard, memory, report).await?;
        self.sweep_durations(&policies, now, guard, memory, report).await?;
        if reconcile {
            self.reconcile_slots(now, guard, report).await?;
        }
        Ok(())
    }

    /// Announces expired locks, then ends the live sessions locks in force cover.
    async fn sweep_locks(
        &self,
        now: EpochMillis,
        guard: &Guard<'_>,
        memory: &TermMemory,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        guard.check()?;
        let announced = self.store.announce_expired_locks(now).await?;
        if let Some(version) = announced {
            tracing::info!(version, "locks expired; announcing the smaller set");
            report.lock_expiries += 1;
        }
        let set = self.store.locks(Some(now)).await?;
        let republish_due = memory
            .locks_published_at
            .is_none_or(|at| at.elapsed() >= locks::LOCK_REPUBLISH_INTERVAL);
        if announced.is_some() || republish_due {
            locks::publish(self.bus.as_ref(), &set, now).await;
            report.locks_published_at = Some(Instant::now());
        }
        for lock in &set.locks {
            let covered = self.sessions.covered(&locks::selector_for(&lock.target)).await?;
            let mut fresh = Vec::new();
            for session in covered {
                if memory.asked_to_end.contains(&session.id) || report.still_live.contains(&session.id) {
                    report.still_live.insert(session.id);
                } else {
                    fresh.push(session.id);
                }
            }
            for batch in fresh.chunks(END_BATCH) {
                guard.check()?;
                let selector = pb::SessionSelector {
                    target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                        ids: batch.to_vec(),
                    })),
                };
                self.terminator
                    .terminate_request(SWEEPER_ACTOR, locks::termination_request(lock, selector))
                    .await?;
                tracing::info!(lock = %lock.id, sessions = batch.len(), "asked to end sessions a lock covers");
                report.ended += batch.len() as u64;
                report.still_live.extend(batch.iter().cloned());
            }
        }
        Ok(())
    }

    /// Sessions least recently active first, down to the earliest idle action in force anywhere.
    async fn sweep_idle(
        &self,
        policies: &PolicySet,
        now: EpochMillis,
        guard: &Guard<'_>,
        memory: &TermMemory,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        let Some(earliest) = policies.earliest_idle_action() else {
            return Ok(());
        };
        let cutoff = now.saturating_sub(millis(earliest));
        // The registry orders last activity to the nearest 10 s: an idle session can follow a
        // more recent one of the same 10 s, so the walk ends only past that.
        let beyond = cutoff.saturating_add(LAST_ACTIVITY_ORDER_MS);
        let mut walk = Walk::new(self.sessions.as_ref(), LiveOrder::LastActivity, self.settings.page_size);
        while let Some(page) = walk.next(|session| session.last_activity_at > beyond).await? {
            let mut warnings = Vec::new();
            let mut ends = Vec::new();
            for session in page {
                let rules = policies.effective(subject(&session));
                let idle = since(now, session.last_activity_at);
                match rules.idle_verdict(idle) {
                    IdleVerdict::End => ends.push(session.id),
                    IdleVerdict::Warn { timeout } => {
                        let disconnect_at = session.last_activity_at.saturating_add(millis(timeout));
                        warnings.push((session, idle, disconnect_at));
                    }
                    IdleVerdict::Fine => {}
                }
            }
            self.warn(warnings, now, guard, report).await?;
            self.end(ends, pb::EndReason::IdleTimeout, guard, memory, report)
                .await?;
        }
        Ok(())
    }

    /// Sessions oldest first, down to the shortest maximum duration in force anywhere.
    async fn sweep_durations(
        &self,
        policies: &PolicySet,
        now: EpochMillis,
        guard: &Guard<'_>,
        memory: &TermMemory,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        let Some(shortest) = policies.shortest_max_duration() else {
            return Ok(());
        };
        let cutoff = now.saturating_sub(millis(shortest));
        let mut walk = Walk::new(self.sessions.as_ref(), LiveOrder::StartedAt, self.settings.page_size);
        while let Some(page) = walk.next(|session| session.started_at > cutoff).await? {
            let ends: Vec<String> = page
                .into_iter()
                .filter(|session| {
                    let rules = policies.effective(subject(session));
                    let age = since(now, session.started_at);
                    rules.max_session_duration.value.is_some_and(|max| age >= max)
                })
                .map(|session| session.id)
                .collect();
            self.end(ends, pb::EndReason::MaxDuration, guard, memory, report)
                .await?;
        }
        Ok(())
    }

    /// Records and sends idle warnings, one bus message per gateway.
    async fn warn(
        &self,
        candidates: Vec<(LiveSession, Duration, EpochMillis)>,
        now: EpochMillis,
        guard: &Guard<'_>,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        if candidates.is_empty() {
            return Ok(());
        }
        guard.check()?;
        let records: Vec<IdleWarningRecord> = candidates
            .iter()
            .map(|(session, _, _)| IdleWarningRecord {
                session_id: session.id.clone(),
                last_activity_at: session.last_activity_at,
            })
            .collect();
        let recorded: HashSet<String> = self
            .store
            .record_idle_warnings(&records, now)
            .await?
            .into_iter()
            .collect();
        // Recorded: this idle period will not be warned about again, here or by a successor.
        // Send now, whatever happens to leadership meanwhile.
        let mut by_gateway: BTreeMap<String, Vec<pb::ControllerMessage>> = BTreeMap::new();
        for (session, idle, disconnect_at) in candidates {
            if !recorded.contains(&session.id) {
                continue;
            }
            let warning = pb::IdleWarning {
                session_id: session.id,
                disconnect_at: Some(vigil_proto::timestamp_from_millis(disconnect_at)),
                user_message: idle_message(idle, since(disconnect_at, now)),
            };
            by_gateway
                .entry(session.gateway_id)
                .or_default()
                .push(pb::ControllerMessage {
                    trace_context: Default::default(),
                    message: Some(pb::controller_message::Message::IdleWarning(warning)),
                });
        }
        for (gateway_id, messages) in by_gateway {
            let count = messages.len() as u64;
            let payload = pb::GatewayDispatch {
                trace_context: Default::default(),
                messages,
            }
            .encode_to_vec();
            match self.bus.publish(&topics::gateway(&gateway_id), payload.into()).await {
                Ok(()) => report.warned += count,
                Err(error) => {
                    tracing::warn!(gateway = %gateway_id, %error, warnings = count, "could not publish idle warnings; they are not re-sent")
                }
            }
        }
        Ok(())
    }

    /// Asks termination to end sessions, skipping those asked already this term.
    async fn end(
        &self,
        session_ids: Vec<String>,
        reason: pb::EndReason,
        guard: &Guard<'_>,
        memory: &TermMemory,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        let mut fresh = Vec::with_capacity(session_ids.len());
        for id in session_ids {
            if memory.asked_to_end.contains(&id) || report.still_live.contains(&id) {
                report.still_live.insert(id);
            } else {
                fresh.push(id);
            }
        }
        for batch in fresh.chunks(END_BATCH) {
            guard.check()?;
            self.terminator.terminate(batch.to_vec(), reason).await?;
            tracing::info!(
                sessions = batch.len(),
                reason = reason.as_str_name(),
                "asked to end sessions"
            );
            report.ended += batch.len() as u64;
            report.still_live.extend(batch.iter().cloned());
        }
        Ok(())
    }

    /// Frees slots whose sessions the registry no longer has live: their release was lost (a
    /// registry replica died) or they were never recorded. Slots younger than `slot_grace` are left
    /// alone; each user's slots are read before the registry is asked, so a slot taken since is
    /// not mistaken for a dead one.
    async fn reconcile_slots(
        &self,
        now: EpochMillis,
        guard: &Guard<'_>,
        report: &mut SweepReport,
    ) -> Result<(), Interrupted> {
        let old_enough = now.saturating_sub(millis(self.settings.slot_grace));
        let mut after: Option<String> = None;
        loop {
            let users = self.store.users_with_slots(after.as_deref(), RECONCILE_BATCH).await?;
            for user in &users {
                let slots: Vec<String> = self
                    .store
                    .slots_of(user)
                    .await?
                    .into_iter()
                    .filter(|slot| slot.created_at <= old_enough)
                    .map(|slot| slot.session_id)
                    .collect();
                if slots.is_empty() {
                    continue;
                }
                let live = self.live_ids_of(user).await?;
                let dead: Vec<String> = slots.into_iter().filter(|id| !live.contains(id)).collect();
                if !dead.is_empty() {
                    guard.check()?;
                    let freed = self.store.release_slots(&dead).await?;
                    tracing::info!(user, freed, "freed concurrency slots of sessions no longer live");
                    report.reconciled += freed;
                }
            }
            if (users.len() as u64) < RECONCILE_BATCH {
                break;
            }
            after = users.last().cloned();
        }
        guard.check()?;
        self.store
            .prune_idle_warnings(now.saturating_sub(millis(WARNING_RETENTION)))
            .await?;
        Ok(())
    }

    async fn live_ids_of(&self, user: &str) -> ServiceResult<HashSet<String>> {
        let mut ids = HashSet::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .sessions
                .live_sessions(&LiveQuery {
                    order: LiveOrder::StartedAt,
                    user: Some(user.to_owned()),
                    page_size: self.settings.page_size,
                    page_token,
                })
                .await?;
            ids.extend(page.sessions.into_iter().map(|session| session.id));
            if page.next_page_token.is_empty() {
                return Ok(ids);
            }
            page_token = page.next_page_token;
        }
    }
}

/// Reads live sessions in one order, a page at a time, until the first that is beyond the
/// candidates.
struct Walk<'a> {
    sessions: &'a dyn SessionSource,
    order: LiveOrder,
    page_size: u32,
    /// `None` once the end (of the list, or of the candidates) is reached.
    page_token: Option<String>,
}

impl<'a> Walk<'a> {
    fn new(sessions: &'a dyn SessionSource, order: LiveOrder, page_size: u32) -> Self {
        Self {
            sessions,
            order,
            page_size,
            page_token: Some(String::new()),
        }
    }

    /// The next page's candidates: the sessions before the first one `beyond` says is past them.
    async fn next(&mut self, beyond: impl Fn(&LiveSession) -> bool) -> ServiceResult<Option<Vec<LiveSession>>> {
        let Some(page_token) = self.page_token.take() else {
            return Ok(None);
        };
        let page = self
            .sessions
            .live_sessions(&LiveQuery {
                order: self.order,
                user: None,
                page_size: self.page_size,
                page_token,
            })
            .await?;
        let mut candidates = page.sessions;
        match candidates.iter().position(beyond) {
            Some(first_beyond) => candidates.truncate(first_beyond),
            None if !page.next_page_token.is_empty() => self.page_token = Some(page.next_page_token),
            None => {}
        }
        Ok(Some(candidates))
    }
}

fn subject(session: &LiveSession) -> Subject<'_> {
    Subject {
        user: &session.user,
        groups: &session.user_groups,
        resource: &session.resource_name,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Time from `then` to `now`, zero if `then` is in the future.
fn since(now: EpochMillis, then: EpochMillis) -> Duration {
    Duration::from_millis(u64::try_from(now.saturating_sub(then)).unwrap_or(0))
}

/// "7 minutes", "1 minute", "less than a minute".
fn minutes(duration: Duration) -> String {
    match duration.as_secs() / 60 {
        0 => "less than a minute".to_owned(),
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    }
}

/// What an idle user is shown.
fn idle_message(idle: Duration, remaining: Duration) -> String {
    format!(
        "You have been inactive for {}. Your session will be disconnected in {} unless you continue working.",
        minutes(idle),
        minutes(remaining)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_users_read_plain_words() {
        assert_eq!(
            idle_message(Duration::from_secs(10 * 60 + 5), Duration::from_secs(19 * 60 + 55)),
            "You have been inactive for 10 minutes. Your session will be disconnected in 19 minutes unless you continue working."
        );
        assert_eq!(minutes(Duration::from_secs(59)), "less than a minute");
        assert_eq!(minutes(Duration::from_secs(61)), "1 minute");
    }

    #[test]
    fn time_since_never_goes_negative() {
        assert_eq!(since(1_000, 2_000), Duration::ZERO);
        assert_eq!(since(2_500, 1_000), Duration::from_millis(1_500));
    }
}
