//! The sessions the gateway carries, by Vigil session id, and how it carries out the registry's
//! commands on them: the notice written into the user's terminal, then SSH_MSG_DISCONNECT carrying it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use russh::{ChannelId, Disconnect};
use tokio_util::sync::CancellationToken;
use vigil_agent::{CommandResult, GatewayHandler};
use vigil_proto::v1::{IdleWarning, TerminateCommand};

use crate::target::TargetConnection;
use crate::web::sessions::WebSessions;

/// How long writing the notice and the disconnect may take before the gateway drops the connection
/// anyway (a client that stopped reading must not keep a killed session alive).
const NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes each way, as running totals.
#[derive(Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// One user connection carried to a target.
pub struct LiveSession {
    pub session_id: String,
    pub user: String,
    pub resource: String,
    /// The user's connection.
    pub client: russh::server::Handle,
    /// The gateway's connection to the target, once made.
    pub target: Mutex<Option<Arc<TargetConnection>>>,
    /// Open session channels of the user, and whether each has a pty (notices then end lines with
    /// `\r\n`).
    channels: Mutex<Vec<(ChannelId, bool)>>,
    last_input: Mutex<Instant>,
    pub counters: Counters,
    /// Cancelled when the registry ends the session: the relay stops forwarding at once, so the notice
    /// and the disconnect are not queued behind pending output.
    pub ended: CancellationToken,
    /// Cuts the user's TCP connection, for a client that does not leave after the disconnect.
    cut: CancellationToken,
}

impl LiveSession {
    pub fn new(
        session_id: String,
        user: String,
        resource: String,
        client: russh::server::Handle,
        cut: CancellationToken,
    ) -> Self {
        Self {
            session_id,
            user,
            resource,
            client,
            target: Mutex::new(None),
            channels: Mutex::new(Vec::new()),
            last_input: Mutex::new(Instant::now()),
            counters: Counters::default(),
            ended: CancellationToken::new(),
            cut,
        }
    }

    pub fn add_channel(&self, channel: ChannelId) {
        lock(&self.channels).push((channel, false));
    }

    pub fn set_pty(&self, channel: ChannelId) {
        if let Some(entry) = lock(&self.channels).iter_mut().find(|(id, _)| *id == channel) {
            entry.1 = true;
        }
    }

    pub fn remove_channel(&self, channel: ChannelId) {
        lock(&self.channels).retain(|(id, _)| *id != channel);
    }

    /// Notes user input now.
    pub fn input(&self) {
        *lock(&self.last_input) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        lock(&self.last_input).elapsed()
    }

    /// Writes a line to the user on every open channel, on stderr so that a command's output stays
    /// clean; waits at most [`NOTICE_TIMEOUT`] in all.
    pub async fn tell(&self, text: &str) {
        let channels = lock(&self.channels).clone();
        let writes = async {
            for (channel, pty) in channels {
                let line = if pty {
                    format!("\r\n{text}\r\n")
                } else {
                    format!("\n{text}\n")
                };
                let _ = self.client.extended_data(channel, 1, line.into_bytes()).await;
            }
        };
        let _ = tokio::time::timeout(NOTICE_TIMEOUT, writes).await;
    }

    /// Ends the connection: stops the relay, shows `notice` in the terminal, disconnects the user with
    /// it, and closes the target connection.
    pub async fn end(&self, notice: &str) {
        self.ended.cancel();
        self.tell(notice).await;
        let _ = tokio::time::timeout(
            NOTICE_TIMEOUT,
            self.client
                .disconnect(Disconnect::ByApplication, notice.to_owned(), "en".to_owned()),
        )
        .await;
        let target = lock(&self.target).take();
        if let Some(target) = target {
            let _ = target
                .disconnect(Disconnect::ByApplication, "session ended", "en")
                .await;
        }
        // A client that reads the disconnect leaves at once; one that does not is cut shortly after.
        let cut = self.cut.clone();
        tokio::spawn(async move {
            tokio::time::sleep(NOTICE_TIMEOUT).await;
            cut.cancel();
        });
    }
}

/// The table of live sessions; the agent's [`GatewayHandler`].
#[derive(Default)]
pub struct Live {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Live {
    pub fn insert(&self, session: Arc<LiveSession>) {
        lock(&self.sessions).insert(session.session_id.clone(), session);
    }

    /// Removes a session; returns it when it was there (false: the registry ended it first).
    pub fn remove(&self, session_id: &str) -> Option<Arc<LiveSession>> {
        lock(&self.sessions).remove(session_id)
    }

    pub fn get(&self, session_id: &str) -> Option<Arc<LiveSession>> {
        lock(&self.sessions).get(session_id).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every session, for a shutdown.
    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        lock(&self.sessions).values().cloned().collect()
    }
}

/// Carries out the registry's commands on [`Live`] (SSH) and [`WebSessions`] (browsers).
pub struct Commands {
    pub live: Arc<Live>,
    pub web: Arc<WebSessions>,
    pub kills: AtomicU64,
}

impl Commands {
    pub fn new(live: Arc<Live>, web: Arc<WebSessions>) -> Self {
        Self {
            live,
            web,
            kills: AtomicU64::new(0),
        }
    }

    /// A browser session ends: its streams are cut, its next request shows `notice`.
    fn terminate_web(&self, command: &TerminateCommand) -> CommandResult {
        let notice = vigil_agent::disconnect_notice(command);
        let Some(session) = self.web.end(&command.session_id, &notice) else {
            return CommandResult::NotFound;
        };
        tracing::info!(
            session_id = %command.session_id,
            user = %session.user,
            resource = %session.resource,
            %notice,
            "ending a browser session on the registry's command"
        );
        self.counted(command);
        CommandResult::Done
    }

    fn counted(&self, command: &TerminateCommand) {
        self.kills.fetch_add(1, Ordering::Relaxed);
        let reason = vigil_proto::v1::EndReason::try_from(command.reason)
            .map(|reason| reason.as_str_name())
            .unwrap_or("END_REASON_UNSPECIFIED");
        crate::metrics::ended_by_registry(reason);
    }
}

#[async_trait]
impl GatewayHandler for Commands {
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
        let Some(session) = self.live.remove(&command.session_id) else {
            return self.terminate_web(command);
        };
        let notice = vigil_agent::disconnect_notice(command);
        tracing::info!(
            session_id = %command.session_id,
            user = %session.user,
            resource = %session.resource,
            %notice,
            "ending a session on the registry's command"
        );
        session.end(&notice).await;
        self.counted(command);
        CommandResult::Done
    }

    async fn idle_warning(&self, warning: &IdleWarning) {
        let Some(session) = self.live.get(&warning.session_id) else {
            // A browser session: a page cannot be written to; its next request is activity anyway.
            return;
        };
        let line = vigil_agent::idle_notice(warning, Some(session.idle_for()), SystemTime::now());
        // On its own task: the agent calls this on its link task, which must not wait on a slow client.
        tokio::spawn(async move { session.tell(&format!("[vigil] {line}")).await });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
