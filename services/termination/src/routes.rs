//! Where each live session is, in memory: session id → (gateway, user), so that a kill can be
//! published without asking the database first.
//!
//! The registry announces every change to a session on the bus channel `sessions` (`SessionChanges`,
//! published by whichever registry replica made the change, after it committed). Every termination
//! replica follows that channel and keeps its own copy of the route: a session is added when it
//! opens (or is registered from a gateway's snapshot, or revived), and removed when it ends. The
//! copy starts from the registry's list of live sessions, read after subscribing, so nothing
//! announced while the list is read is missed; ends announced meanwhile are remembered and win
//! over the list. When the subscription breaks (pub/sub forgets what it cannot deliver), the copy
//! is rebuilt the same way, and while it is not complete it answers nothing.
//!
//! Why a copy in termination, not a lookup on the registry replica that holds the link: the kill
//! then goes out the way every command does — on `gateway.<id>`, which the link's replica
//! subscribes to before anything else — so a kill racing a link's opening or moving between
//! replicas is covered as before, and a route is one hash lookup in the process that publishes.
//! This is correct with any number of registry and termination replicas: the channel carries every
//! replica's changes to every follower.
//!
//! How wrong it can be, and what then happens:
//! - A session missing (opened a moment ago, its announcement still on its way): the kill is not
//!   routed here and takes the resolving path through the registry, as before.
//! - A session still listed after it ended (its end announced but not yet received, or the
//!   announcement lost without a break): the command goes to the gateway, which answers NOT_FOUND;
//!   the registry records the answer and the command is recorded as acknowledged with that outcome.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_clients::SessionDirectory;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::backoff::Backoff;
use vigil_runtime::bus::{ControlBus, Delivery, TypedSubscription};

/// Where a live session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub gateway_id: String,
    pub user: String,
}

/// The in-memory route of live sessions (see the module's documentation).
#[derive(Default)]
pub struct SessionRoutes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Complete: the list was read and no break happened since.
    ready: bool,
    /// While the list is being read: sessions announced as ended meanwhile (the list, read
    /// earlier, may still show them).
    ended_while_loading: HashSet<String>,
    sessions: HashMap<String, Route>,
}

impl SessionRoutes {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The routes of every one of `ids`, in order, or nothing when one of them is unknown or the
    /// route is not complete.
    pub fn lookup(&self, ids: &[String]) -> Option<Vec<(String, Route)>> {
        let state = self.state();
        if !state.ready {
            return None;
        }
        ids.iter()
            .map(|id| state.sessions.get(id).map(|route| (id.clone(), route.clone())))
            .collect()
    }

    /// Every live session, or nothing while the route is not complete.
    pub fn all(&self) -> Option<Vec<(String, Route)>> {
        let state = self.state();
        state.ready.then(|| {
            state
                .sessions
                .iter()
                .map(|(id, route)| (id.clone(), route.clone()))
                .collect()
        })
    }

    /// Whether the route is complete.
    pub fn is_ready(&self) -> bool {
        self.state().ready
    }

    /// Live sessions known.
    pub fn len(&self) -> usize {
        self.state().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one announced change.
    pub fn apply(&self, event: &pb::SessionEvent) {
        self.apply_all(std::slice::from_ref(event));
    }

    /// Applies announced changes, in order (one message on the channel).
    pub fn apply_all(&self, events: &[pb::SessionEvent]) {
        let mut state = self.state();
        for event in events {
            state.apply(event);
        }
    }

    /// Starts (re)building: the route answers nothing until [`SessionRoutes::finish_loading`].
    /// What it holds is kept and changes keep being applied; the list completes it.
    fn begin_loading(&self) {
        let mut state = self.state();
        state.ready = false;
        state.ended_while_loading.clear();
    }

    /// Completes the route with the registry's list of live sessions, read after
    /// [`SessionRoutes::begin_loading`]: what the list lacks is dropped unless announced since
    /// (announced opened), and what ended since stays out.
    fn finish_loading(&self, live: &[pb::Session], announced: &HashSet<String>) {
        let mut state = self.state();
        let ended = std::mem::take(&mut state.ended_while_loading);
        let mut sessions: HashMap<String, Route> = live
            .iter()
            .filter(|session| !ended.contains(&session.id))
            .map(|session| (session.id.clone(), route_of(session)))
            .collect();
        for id in announced {
            if let Some(route) = state.sessions.get(id) {
                sessions.insert(id.clone(), route.clone());
            }
        }
        state.sessions = sessions;
        state.ready = true;
    }
}

impl State {
    /// Applies one announced change: an end removes the route, a live session adds or moves it.
    fn apply(&mut self, event: &pb::SessionEvent) {
        let Some(session) = &event.session else {
            return;
        };
        match pb::SessionEventKind::try_from(event.kind) {
            Ok(pb::SessionEventKind::Ended) => {
                self.sessions.remove(&session.id);
                if !self.ready {
                    self.ended_while_loading.insert(session.id.clone());
                }
            }
            Ok(pb::SessionEventKind::Opened | pb::SessionEventKind::Updated | pb::SessionEventKind::Snapshot)
                if is_live(session) =>
            {
                self.ended_while_loading.remove(&session.id);
                self.sessions.insert(session.id.clone(), route_of(session));
            }
            _ => {}
        }
    }
}

fn is_live(session: &pb::Session) -> bool {
    session.status != pb::SessionStatus::Disconnected as i32 && session.ended_at.is_none()
}

fn route_of(session: &pb::Session) -> Route {
    Route {
        gateway_id: session.gateway_id.clone(),
        user: session.user.clone(),
    }
}

/// The selector of every live session.
fn everything() -> pb::SessionSelector {
    pb::SessionSelector {
        target: Some(pb::session_selector::Target::All(pb::AllSessions { idle_only: false })),
    }
}

/// Why following stopped for a moment.
enum Interruption {
    /// The subscription broke (something may have been missed): rebuild.
    Gap,
    /// The subscription ended, or could not be made: subscribe again after a pause.
    Lost,
    /// The list could not be read: read it again after a pause.
    ListFailed,
    Shutdown,
}

/// Keeps `routes` following the registry's announcements until `shutdown`.
pub async fn follow(
    routes: Arc<SessionRoutes>,
    bus: Arc<dyn ControlBus>,
    directory: Arc<dyn SessionDirectory>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        routes.begin_loading();
        let interruption = match TypedSubscription::<pb::SessionChanges>::subscribe(bus.as_ref(), topics::SESSIONS)
            .await
        {
            Ok(mut subscription) => {
                follow_subscription(&routes, &mut subscription, directory.as_ref(), &shutdown, &mut backoff).await
            }
            Err(error) => {
                tracing::debug!(%error, "could not follow session changes; kills resolve through the registry meanwhile");
                Interruption::Lost
            }
        };
        routes.begin_loading();
        match interruption {
            Interruption::Shutdown => return,
            Interruption::Gap => continue,
            Interruption::Lost | Interruption::ListFailed => {
                let delay = backoff.fail();
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One subscription's life: read the list while applying changes, then apply changes.
async fn follow_subscription(
    routes: &SessionRoutes,
    subscription: &mut TypedSubscription<pb::SessionChanges>,
    directory: &dyn SessionDirectory,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Interruption {
    let selector = everything();
    let list = directory.resolve(&selector);
    tokio::pin!(list);
    let mut announced = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Interruption::Shutdown,
            listed = &mut list => match listed {
                Ok(listed) => {
                    routes.finish_loading(&listed.sessions, &announced);
                    backoff.succeed();
                    tracing::debug!(sessions = routes.len(), "session routes complete");
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "could not list live sessions; kills resolve through the registry meanwhile");
                    return Interruption::ListFailed;
                }
            },
            event = subscription.next() => match event {
                Some(Delivery::Message(changes)) => {
                    announced.extend(changes.events.iter().filter_map(|event| event.session.as_ref()).map(|session| session.id.clone()));
                    routes.apply_all(&changes.events);
                }
                Some(Delivery::MayHaveMissed) => return Interruption::Gap,
                None => return Interruption::Lost,
            },
        }
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Interruption::Shutdown,
            event = subscription.next() => match event {
                Some(Delivery::Message(changes)) => routes.apply_all(&changes.events),
                Some(Delivery::MayHaveMissed) => {
                    tracing::info!("session changes may have been missed; rebuilding the session routes");
                    return Interruption::Gap;
                }
                None => return Interruption::Lost,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, status: pb::SessionStatus) -> pb::Session {
        pb::Session {
            id: id.into(),
            user: format!("user-of-{id}"),
            gateway_id: "gw".into(),
            status: status as i32,
            ..Default::default()
        }
    }

    fn event(kind: pb::SessionEventKind, id: &str, status: pb::SessionStatus) -> pb::SessionEvent {
        pb::SessionEvent {
            kind: kind as i32,
            session: Some(session(id, status)),
            ..Default::default()
        }
    }

    fn ids(routes: &SessionRoutes) -> Vec<String> {
        let mut ids: Vec<String> = routes.all().unwrap().into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn nothing_is_answered_until_the_list_is_read() {
        let routes = SessionRoutes::default();
        routes.begin_loading();
        routes.apply(&event(pb::SessionEventKind::Opened, "a", pb::SessionStatus::Active));
        assert_eq!(routes.lookup(&["a".into()]), None);
        assert_eq!(routes.all(), None);
    }

    #[test]
    fn the_list_and_the_changes_announced_while_it_was_read_make_the_route() {
        use pb::SessionEventKind::{Ended, Opened, Updated};
        use pb::SessionStatus::{Active, Disconnected, Idle};
        let routes = SessionRoutes::default();
        routes.begin_loading();
        let mut announced = HashSet::new();
        for change in [
            event(Ended, "listed-then-ended", Disconnected),
            event(Opened, "opened-after-the-list", Active),
            event(Ended, "revived", Disconnected),
            event(Opened, "revived", Active),
        ] {
            announced.insert(change.session.as_ref().unwrap().id.clone());
            routes.apply(&change);
        }
        let listed = [
            session("listed", Active),
            session("listed-then-ended", Active),
            session("revived", Idle),
        ];
        routes.finish_loading(&listed, &announced);
        assert_eq!(ids(&routes), ["listed", "opened-after-the-list", "revived"]);

        routes.apply(&event(Ended, "listed", Disconnected));
        routes.apply(&event(Updated, "idle-one", Idle));
        routes.apply(&event(pb::SessionEventKind::Denied, "denied", Disconnected));
        assert_eq!(ids(&routes), ["idle-one", "opened-after-the-list", "revived"]);
        let found = routes.lookup(&["revived".into(), "idle-one".into()]).unwrap();
        assert_eq!(found[0].1.user, "user-of-revived");
        assert_eq!(routes.lookup(&["revived".into(), "listed".into()]), None);
    }

    #[test]
    fn a_rebuild_drops_what_the_new_list_lacks() {
        let routes = SessionRoutes::default();
        routes.begin_loading();
        routes.finish_loading(
            &[
                session("a", pb::SessionStatus::Active),
                session("b", pb::SessionStatus::Active),
            ],
            &HashSet::new(),
        );
        // A break: "b" ended while nobody listened.
        routes.begin_loading();
        routes.finish_loading(&[session("a", pb::SessionStatus::Active)], &HashSet::new());
        assert_eq!(ids(&routes), ["a"]);
    }
}
