//! Browser sessions: one Vigil session per browser session, found by the id in its cookie. An ended
//! session leaves its notice behind for a while, so the browser's next request shows why it ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use tokio_util::sync::CancellationToken;
use vigil_agent::Agent;

/// How long the notice of an ended session waits for the browser's next request.
const NOTICE_KEPT: Duration = Duration::from_secs(3600);
/// Most notices kept at once (the oldest go first).
const MAX_NOTICES: usize = 10_000;

/// One browser session, admitted as a Vigil session.
pub struct WebSession {
    pub session_id: String,
    /// The random id in the cookie.
    pub cookie: String,
    pub user: String,
    pub resource: String,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    last_request: Mutex<Instant>,
    /// Cancelled when the session ends: streaming responses and WebSockets are cut at once.
    pub ended: CancellationToken,
}

impl WebSession {
    pub fn new(session_id: String, user: String, resource: String) -> Self {
        Self {
            session_id,
            cookie: new_cookie_id(),
            user,
            resource,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_request: Mutex::new(Instant::now()),
            ended: CancellationToken::new(),
        }
    }

    /// A request: activity for the registry.
    pub fn request(&self, agent: &Agent) {
        *lock(&self.last_request) = Instant::now();
        self.report(agent, Some(SystemTime::now()));
    }

    /// Counts bytes from the browser (`inbound`) or to it, and reports the totals.
    pub fn count(&self, agent: &Agent, inbound: bool, bytes: usize) {
        let counter = if inbound { &self.bytes_in } else { &self.bytes_out };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        self.report(agent, None);
    }

    fn report(&self, agent: &Agent, input: Option<SystemTime>) {
        agent.record_activity(
            &self.session_id,
            input,
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        );
    }

    pub fn idle_for(&self) -> Duration {
        lock(&self.last_request).elapsed()
    }
}

/// 32 random bytes, hex.
fn new_cookie_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What a cookie's id stands for.
pub enum Lookup {
    Live(Arc<WebSession>),
    /// Ended by the registry; the notice for the user (given once).
    Ended(String),
    Unknown,
}

#[derive(Default)]
struct Table {
    by_cookie: HashMap<String, Arc<WebSession>>,
    by_session: HashMap<String, String>,
    notices: HashMap<String, (String, Instant)>,
}

/// The live browser sessions.
#[derive(Default)]
pub struct WebSessions {
    table: Mutex<Table>,
}

impl WebSessions {
    pub fn insert(&self, session: Arc<WebSession>) {
        let mut table = lock(&self.table);
        table
            .by_session
            .insert(session.session_id.clone(), session.cookie.clone());
        table.by_cookie.insert(session.cookie.clone(), session);
    }

    pub fn lookup(&self, cookie: &str) -> Lookup {
        let mut table = lock(&self.table);
        if let Some(session) = table.by_cookie.get(cookie) {
            return Lookup::Live(Arc::clone(session));
        }
        match table.notices.remove(cookie) {
            Some((notice, _)) => Lookup::Ended(notice),
            None => Lookup::Unknown,
        }
    }

    /// Ends a session on the registry's command: cuts its streams and keeps `notice` for its next
    /// request. `None` when the session is not here.
    pub fn end(&self, session_id: &str, notice: &str) -> Option<Arc<WebSession>> {
        let session = {
            let mut table = lock(&self.table);
            let session = remove(&mut table, session_id)?;
            table.notices.retain(|_, (_, at)| at.elapsed() < NOTICE_KEPT);
            if table.notices.len() >= MAX_NOTICES
                && let Some(oldest) = table
                    .notices
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                table.notices.remove(&oldest);
            }
            table
                .notices
                .insert(session.cookie.clone(), (notice.to_owned(), Instant::now()));
            session
        };
        session.ended.cancel();
        Some(session)
    }

    /// Removes a session the gateway itself ends (idle browser, shutdown); cuts its streams.
    pub fn remove(&self, session_id: &str) -> Option<Arc<WebSession>> {
        let session = remove(&mut lock(&self.table), session_id)?;
        session.ended.cancel();
        Some(session)
    }

    /// Sessions without a request for `idle` or longer.
    pub fn idle(&self, idle: Duration) -> Vec<Arc<WebSession>> {
        lock(&self.table)
            .by_cookie
            .values()
            .filter(|session| session.idle_for() >= idle)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<WebSession>> {
        lock(&self.table).by_cookie.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.table).by_cookie.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn remove(table: &mut Table, session_id: &str) -> Option<Arc<WebSession>> {
    let cookie = table.by_session.remove(session_id)?;
    table.by_cookie.remove(&cookie)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_leaves_its_notice_once() {
        let sessions = WebSessions::default();
        let session = Arc::new(WebSession::new("s1".into(), "alice".into(), "wiki".into()));
        let cookie = session.cookie.clone();
        assert_eq!(cookie.len(), 64);
        sessions.insert(Arc::clone(&session));
        assert!(matches!(sessions.lookup(&cookie), Lookup::Live(_)));
        assert!(sessions.end("s1", "You have been disconnected").is_some());
        assert!(session.ended.is_cancelled());
        assert!(sessions.end("s1", "again").is_none());
        assert!(matches!(sessions.lookup(&cookie), Lookup::Ended(notice) if notice == "You have been disconnected"));
        assert!(matches!(sessions.lookup(&cookie), Lookup::Unknown));
        assert!(sessions.is_empty());
    }
}
