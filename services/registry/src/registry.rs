//! The registry: its state and background tasks, and the gRPC services built on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;

use crate::convert::{location_from_proto, location_to_proto, risk_from_proto, risk_to_proto};
use crate::domain::{EpochMillis, GeoLocation, LocationKind, RiskFlag, SessionRecord};
use vigil_runtime::bus::ControlBus;

use crate::activity::ActivityWriter;
use crate::admission::{AdmissionHooks, PolicyUnavailable, SlotReleaser};
use crate::commands::{CommandJournal, CommandReporter, JournalSlot};
use crate::ending::{EndSinks, EndWriter, announce_ended};
use crate::events::EventHub;
use crate::idle::run_idle_marker;
use crate::liveness::{LostGatewayCheck, SeenTracker, run_seen_writer, seen_interval};
use crate::locks::LockFeed;
use crate::page_token::PageTokens;
use crate::settings::RegistrySettings;
use crate::store::SessionStore;
use vigil_clients::{AdmissionPolicy, RiskAssessor, SessionEvictor};

/// A running registry replica. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn SessionStore>,
    pub bus: Arc<dyn ControlBus>,
    pub events: EventHub,
    pub activity: ActivityWriter,
    /// Writes the ends of acknowledged kills, batched.
    pub ender: EndWriter,
    pub settings: RegistrySettings,
    pub page_tokens: PageTokens,
    pub journal: JournalSlot,
    pub hooks: AdmissionHooks,
    pub releaser: SlotReleaser,
    pub reporter: CommandReporter,
    /// The lock set pushed to this replica's links.
    pub locks: LockFeed,
    /// When each gateway linked here was last heard from, until written.
    pub seen: Arc<SeenTracker>,
    /// Links open on this replica: gateway id → the link's cancellation, so a newer link for the
    /// same gateway closes the older one.
    pub links: Mutex<HashMap<String, (u64, CancellationToken)>>,
    pub next_link_id: std::sync::atomic::AtomicU64,
    pub shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Registry {
    /// Starts the background work (change feed, activity writer, idle marker) and returns the
    /// replica. Everything stops when `shutdown` is cancelled; [`Registry::stopped`] waits for it.
    /// The background work shares `store` with the calls: see [`Registry::start_with_background`].
    pub async fn start(
        settings: RegistrySettings,
        store: Arc<dyn SessionStore>,
        bus: Arc<dyn ControlBus>,
        shutdown: CancellationToken,
    ) -> ServiceResult<Self> {
        Self::start_with_background(settings, store.clone(), store, bus, shutdown).await
    }

    /// [`Registry::start`] with the background work — activity and kill-end writes, idle marking,
    /// the gateways' last-seen writes and lost-gateway check, the live-sessions gauge — on
    /// `background` (the same database on connections of its own), so that calls holding every
    /// connection of `store` cannot starve it.
    pub async fn start_with_background(
        settings: RegistrySettings,
        store: Arc<dyn SessionStore>,
        background: Arc<dyn SessionStore>,
        bus: Arc<dyn ControlBus>,
        shutdown: CancellationToken,
    ) -> ServiceResult<Self> {
        settings
            .validate()
            .map_err(vigil_runtime::ServiceError::FailedPrecondition)?;
        let events = EventHub::start(bus.clone(), settings.watch_buffer, shutdown.clone()).await?;
        let (activity, activity_task) =
            ActivityWriter::start(background.clone(), events.clone(), &settings, shutdown.clone());
        let hooks = AdmissionHooks::default();
        let (releaser, releaser_task) = SlotReleaser::start(hooks.clone(), shutdown.clone());
        let journal = JournalSlot::default();
        let (reporter, reporter_task) = CommandReporter::start(journal.clone(), shutdown.clone());
        let sinks = EndSinks {
            events: events.clone(),
            releaser: releaser.clone(),
            reporter: reporter.clone(),
        };
        let (ender, ender_task) = EndWriter::start(background.clone(), sinks, shutdown.clone());
        // Subscribed before the first link can open, so every link gets a set that follows every change.
        let (locks, locks_task) = LockFeed::start(
            bus.clone(),
            hooks.clone(),
            settings.admission.policy_timeout,
            shutdown.clone(),
        )
        .await?;
        let seen = Arc::new(SeenTracker::default());
        let mut tasks = vec![activity_task, ender_task, reporter_task, releaser_task, locks_task];
        tasks.extend(start_sweeps(
            &background,
            &bus,
            &events,
            &releaser,
            &seen,
            &settings,
            &shutdown,
        ));
        tracing::info!(replica = %settings.replica, "registry started");
        let registry = Self {
            inner: Arc::new(Inner {
                page_tokens: PageTokens::new(&settings.page_token_key),
                journal,
                hooks,
                releaser,
                reporter,
                locks,
                seen,
                store,
                bus,
                events,
                activity,
                ender,
                settings,
                links: Mutex::default(),
                next_link_id: Default::default(),
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        };
        Ok(registry)
    }

    /// Connects the termination service: links then deliver its pending commands when they open,
    /// and report what their agents did with commands. Returns false if one was attached already.
    pub fn attach_command_journal(&self, journal: Arc<dyn CommandJournal>) -> bool {
        self.inner.journal.attach(journal)
    }

    /// Connects geo: session starts are located and scored.
    pub fn attach_risk_assessor(&self, assessor: Arc<dyn RiskAssessor>) -> bool {
        self.inner.hooks.assessor.set(assessor).is_ok()
    }

    /// Connects policy: session starts are admitted by it, ended sessions released to it, and the
    /// lock set loaded from it.
    pub fn attach_admission_policy(&self, policy: Arc<dyn AdmissionPolicy>) -> bool {
        let attached = self.inner.hooks.policy.set(policy).is_ok();
        if attached {
            self.inner.locks.policy_attached();
        }
        attached
    }

    /// The lock set this replica pushes to its gateways (`None` while it does not know one).
    pub fn locks(&self) -> Option<pb::LockUpdate> {
        self.inner.locks.current()
    }

    /// Connects what ends sessions to make room under a concurrency limit (termination).
    pub fn attach_session_evictor(&self, evictor: Arc<dyn SessionEvictor>) -> bool {
        self.inner.hooks.evictor.set(evictor).is_ok()
    }

    /// The store: for readiness checks and the composing binaries (other services reach the
    /// registry through the `vigil-clients` traits it provides, never through its store).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The bus, for readiness checks.
    pub fn bus(&self) -> &Arc<dyn ControlBus> {
        &self.inner.bus
    }

    /// Session activity updates this replica has written to the store since it started.
    pub fn activity_written(&self) -> u64 {
        self.inner.activity.written()
    }

    /// Waits for the background tasks to finish after shutdown (pending activity is flushed).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "registry task failed");
            }
        }
    }
}

/// The replica's periodic work on the store: the idle marker, the gateways' last-seen writer, the
/// lost-gateway check and the live-sessions gauge.
fn start_sweeps(
    store: &Arc<dyn SessionStore>,
    bus: &Arc<dyn ControlBus>,
    events: &EventHub,
    releaser: &SlotReleaser,
    seen: &Arc<SeenTracker>,
    settings: &RegistrySettings,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let idle = tokio::spawn(run_idle_marker(
        store.clone(),
        events.clone(),
        settings.clone(),
        shutdown.clone(),
    ));
    let seen = tokio::spawn(run_seen_writer(
        store.clone(),
        seen.clone(),
        seen_interval(settings.gateway_seen_interval, settings.gateway_grace),
        shutdown.clone(),
    ));
    let lost = tokio::spawn(
        LostGatewayCheck {
            store: store.clone(),
            bus: bus.clone(),
            events: events.clone(),
            releaser: releaser.clone(),
            grace: settings.gateway_grace,
        }
        .run(shutdown.clone()),
    );
    let metrics = crate::metrics::start_live_sessions_refresher(
        store.clone(),
        settings.metrics_refresh_interval,
        shutdown.clone(),
    );
    vec![idle, seen, lost, metrics]
}

/// What admission decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let the user in, ending these older sessions to make room.
    Allow { evict: Vec<String> },
    /// Refuse, with a sentence for the user.
    Deny(String),
}

impl Inner {
    /// Locates and scores the start (geo) and asks policy, at once: the rules in force for most
    /// starts do not look at the risk score, and policy says when they do (then it is asked again
    /// with geo's assessment). Fills in the session's location and risk. Errors only when the store
    /// fails; the outside services' failures are handled here.
    ///
    /// The user's ended sessions are released at policy before it is asked, so their slots are
    /// free for this start.
    pub(crate) async fn admission(
        &self,
        session: &mut SessionRecord,
        start: pb::SessionStart,
    ) -> ServiceResult<Verdict> {
        let Some(policy) = self.hooks.policy.get() else {
            self.assess(session).await?;
            return Ok(Verdict::Allow { evict: Vec::new() });
        };
        let user = session.user.clone();
        // The start as recorded (the gateway's clock may have been absent or ahead): policy's
        // "end the oldest" orders by it.
        let start = pb::SessionStart {
            started_at: Some(vigil_proto::timestamp_from_millis(session.started_at)),
            ..start
        };
        let pending = pb::AdmitRequest {
            session_id: session.id.clone(),
            gateway_id: session.gateway_id.clone(),
            start: Some(start),
            location: None,
            risk: None,
            risk_pending: true,
        };
        let located = self.assess(session);
        let asked = async {
            self.release_ended(&user, policy).await;
            self.ask_policy(policy.as_ref(), pending.clone()).await
        };
        let (located, asked) = tokio::join!(located, asked);
        located?;
        let first = match asked {
            Ok(answer) if answer.decided_without_risk => return Ok(verdict(session, answer)),
            Ok(answer) => answer,
            Err(why) => return Ok(self.policy_unavailable(session, &why)),
        };
        // The rules look at the score (or policy predates `risk_pending`): asked again with it.
        let assessed = pb::AdmitRequest {
            location: Some(location_to_proto(&session.location)),
            risk: Some(risk_to_proto(&session.risk)),
            risk_pending: false,
            ..pending
        };
        match self.ask_policy(policy.as_ref(), assessed).await {
            Ok(mut answer) => {
                // A policy service that predates `risk_pending` decided the first time as if the
                // score were 0, taking the slot; the sessions it evicted then lost theirs, and
                // its second answer ("slot already held") names none.
                answer.evict_session_ids.extend(first.evict_session_ids);
                Ok(verdict(session, answer))
            }
            Err(why) => Ok(self.policy_unavailable(session, &why)),
        }
    }

    /// Geo's location and score for the start, when geo is attached (see [`Inner::locate`]).
    async fn assess(&self, session: &mut SessionRecord) -> ServiceResult<()> {
        match self.hooks.assessor.get() {
            Some(assessor) => self.locate(assessor.as_ref(), session).await,
            None => Ok(()),
        }
    }

    /// The user's sessions that ended here are released first, so their slots are free for this
    /// start. Bounded like the admission itself; if it fails, the release is retried in the
    /// background and the start is decided without it (as it would have been before).
    async fn release_ended(&self, user: &str, policy: &Arc<dyn AdmissionPolicy>) {
        let timeout = self.settings.admission.policy_timeout;
        match tokio::time::timeout(timeout, self.releaser.flush_for(user, policy)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(user, %error, "could not release ended sessions before admission")
            }
            Err(_) => tracing::warn!(user, "releasing ended sessions before admission timed out"),
        }
    }

    /// Policy's answer, or why there is none (an error, or no answer within `policy_timeout`).
    async fn ask_policy(
        &self,
        policy: &dyn AdmissionPolicy,
        request: pb::AdmitRequest,
    ) -> Result<pb::AdmitResponse, String> {
        let timeout = self.settings.admission.policy_timeout;
        match tokio::time::timeout(timeout, policy.admit(request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// The verdict when policy could not be asked: as `on_policy_unavailable` says.
    fn policy_unavailable(&self, session: &SessionRecord, why: &str) -> Verdict {
        let stance = self.settings.admission.on_policy_unavailable;
        tracing::warn!(session = %session.id, %why, ?stance, "policy unavailable");
        match stance {
            PolicyUnavailable::Allow => Verdict::Allow { evict: Vec::new() },
            PolicyUnavailable::Deny => Verdict::Deny(
                "Sign-in is temporarily unavailable: the access policy could not be checked. Try again shortly.".into(),
            ),
        }
    }

    /// Asks geo where the start comes from and how unusual it is; when geo cannot answer within
    /// `geo_timeout`, the session is marked "location unavailable" (location is advice, not a gate).
    async fn locate(&self, assessor: &dyn RiskAssessor, session: &mut SessionRecord) -> ServiceResult<()> {
        let geo_timeout = self.settings.admission.geo_timeout;
        let concurrent_locations = self.live_locations_of(&session.user).await?;
        let request = pb::AssessRequest {
            user: session.user.clone(),
            ip: session.client_ip.clone(),
            device: session.device.clone(),
            at: Some(vigil_proto::timestamp_from_millis(session.started_at)),
            session_id: session.id.clone(),
            concurrent_locations,
        };
        match tokio::time::timeout(geo_timeout, assessor.assess(request)).await {
            Ok(Ok(assessment)) => {
                session.location = assessment
                    .location
                    .as_ref()
                    .map(location_from_proto)
                    .unwrap_or_default();
                session.risk = assessment.risk.as_ref().map(risk_from_proto).unwrap_or_default();
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {geo_timeout:?}"),
                };
                tracing::warn!(session = %session.id, %why, "geo unavailable; admitting without a location");
                session.location = GeoLocation {
                    kind: LocationKind::Unavailable as i32,
                    ..GeoLocation::default()
                };
            }
        }
        Ok(())
    }

    /// Locations of the user's live sessions (for geo's "far apart at once" rule).
    async fn live_locations_of(&self, user: &str) -> ServiceResult<Vec<pb::Location>> {
        let locations = self.store.live_locations_of(user).await?;
        Ok(locations.iter().map(location_to_proto).collect())
    }

    /// Ends older sessions to make room, in the background (the new session is admitted already).
    pub(crate) fn evict(&self, session_ids: Vec<String>) {
        if session_ids.is_empty() {
            return;
        }
        let Some(evictor) = self.hooks.evictor.get().cloned() else {
            tracing::warn!(sessions = ?session_ids, "policy asked to end older sessions but no termination service is attached");
            return;
        };
        // A child of the admission that made room, so the kill joins the admission's trace.
        let span = tracing::info_span!("registry.evict", sessions = session_ids.len());
        let task = async move {
            if let Err(error) = evictor.evict(session_ids.clone()).await {
                tracing::warn!(%error, sessions = ?session_ids, "could not end older sessions for the concurrency limit");
            }
        };
        tokio::spawn(task.instrument(span));
    }

    /// Announces ended sessions and frees their concurrency slots.
    pub(crate) async fn announce_ended(&self, sessions: &[SessionRecord], now: EpochMillis) {
        announce_ended(&self.events, &self.releaser, sessions, now).await;
    }

    pub(crate) async fn announce_ended_one(&self, session: &SessionRecord, now: EpochMillis) {
        self.announce_ended(std::slice::from_ref(session), now).await;
    }
}

/// Policy's answer as a verdict; a flag for review is recorded on the session's risk.
fn verdict(session: &mut SessionRecord, answer: pb::AdmitResponse) -> Verdict {
    match pb::AdmissionVerdict::try_from(answer.verdict) {
        Ok(pb::AdmissionVerdict::Allow) => Verdict::Allow {
            evict: answer.evict_session_ids,
        },
        Ok(pb::AdmissionVerdict::AllowFlagged) => {
            session.risk.flags.push(RiskFlag {
                code: crate::domain::FLAGGED_FOR_REVIEW.into(),
                points: 0,
                explanation: if answer.reason.is_empty() {
                    "flagged for review by policy".into()
                } else {
                    answer.reason
                },
            });
            Verdict::Allow {
                evict: answer.evict_session_ids,
            }
        }
        Ok(pb::AdmissionVerdict::Deny) => Verdict::Deny(if answer.reason.is_empty() {
            "Access denied by policy.".into()
        } else {
            answer.reason
        }),
        // RISK_NEEDED answers only a `risk_pending` request; the registry asks with the risk then.
        Ok(pb::AdmissionVerdict::Unspecified | pb::AdmissionVerdict::RiskNeeded) | Err(_) => {
            tracing::warn!(session = %session.id, verdict = answer.verdict, "policy gave no verdict; refusing");
            Verdict::Deny("Access could not be decided; contact your administrator.".into())
        }
    }
}
