//! The SSH bastion: terminates the user's connection (public-key authentication against the users
//! file), admits it as a Vigil session, opens the gateway's own connection to the target and relays
//! session channels between the two.
//!
//! Relay: every request the user makes on a channel (pty-req, env, shell, exec, subsystem) is sent to
//! the target with a reply wanted, and the target's answer is the user's answer, in order. Data is
//! forwarded both ways through russh's channel writers, which wait for the receiving side's window:
//! a slow reader slows the writer down instead of filling the gateway's memory. Port forwarding,
//! X11 and agent forwarding are refused.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use russh::keys::PublicKey;
use russh::server::{self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, ChannelWriteHalf, Disconnect, MethodKind, Pty, Sig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use vigil_agent::Agent;
use vigil_proto::v1::{EndReason, ResourceType, SessionStart};

use crate::config::{SshConfig, TargetConfig};
use crate::listen::next_connection;
use crate::live::{Live, LiveSession};
use crate::login::{self, LoginError};
use crate::stream::CuttableStream;
use crate::target::{self, TargetConnection};
use crate::users::{User, Users};

/// What the bastion shares between connections.
pub struct Bastion {
    pub config: SshConfig,
    pub users: Users,
    pub agent: Agent,
    pub live: Arc<Live>,
    pub client_key: Arc<russh::keys::PrivateKey>,
    server_config: Arc<server::Config>,
    connections: AtomicUsize,
}

impl Bastion {
    pub fn new(
        config: SshConfig,
        users: Users,
        agent: Agent,
        live: Arc<Live>,
        host_key: russh::keys::PrivateKey,
        client_key: russh::keys::PrivateKey,
    ) -> Self {
        let server_config = server::Config {
            server_id: russh::SshId::Standard(format!("SSH-2.0-VigilGateway_{}", env!("CARGO_PKG_VERSION")).into()),
            methods: (&[MethodKind::PublicKey][..]).into(),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            // Idleness is Vigil's to judge (idle warnings, idle timeouts), not the transport's; dead
            // peers are found by keepalives instead.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            max_auth_attempts: 6,
            ..server::Config::default()
        };
        Self {
            config,
            users,
            agent,
            live,
            client_key: Arc::new(client_key),
            server_config: Arc::new(server_config),
            connections: AtomicUsize::new(0),
        }
    }

    /// Connections open right now (authenticating or not).
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The targets `user` may reach, by name.
    pub fn reachable(&self, user: &User) -> Vec<&TargetConfig> {
        let mut targets: Vec<&TargetConfig> = self
            .config
            .targets
            .iter()
            .filter(|target| target.groups.is_empty() || target.groups.iter().any(|group| user.groups.contains(group)))
            .collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        targets
    }
}

/// Accepts connections until `shutdown`, then ends the live ones.
pub async fn serve(bastion: Arc<Bastion>, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let Some((socket, peer)) = next_connection(&listener, &shutdown).await else {
            break;
        };
        if bastion.connections.load(Ordering::Relaxed) >= bastion.config.max_connections {
            tracing::warn!(%peer, max = bastion.config.max_connections, "too many connections; refusing one");
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        bastion.connections.fetch_add(1, Ordering::Relaxed);
        let bastion = Arc::clone(&bastion);
        tokio::spawn(async move {
            run_connection(&bastion, socket, peer).await;
            bastion.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
    for session in bastion.live.all() {
        if bastion.live.remove(&session.session_id).is_some() {
            session.end("The gateway is shutting down.").await;
            bastion
                .agent
                .close_session(&session.session_id, EndReason::GatewayClosed, "gateway shut down")
                .await;
        }
    }
}

/// What a connection's handler and its supervising task share.
struct ConnectionState {
    authenticated: bool,
    session: Option<Arc<LiveSession>>,
    /// Cuts the TCP connection (see [`CuttableStream`]).
    cut: CancellationToken,
}

async fn run_connection(bastion: &Arc<Bastion>, socket: tokio::net::TcpStream, peer: SocketAddr) {
    let cut = CancellationToken::new();
    let state = Arc::new(Mutex::new(ConnectionState {
        authenticated: false,
        session: None,
        cut: cut.clone(),
    }));
    let handler = Connection {
        bastion: Arc::clone(bastion),
        peer,
        state: Arc::clone(&state),
        login: None,
        mode: Mode::Authenticating,
        channels: HashMap::new(),
    };
    // Cut on every way out of this function: russh's session task must not outlive the connection.
    let _cut_on_exit = cut.clone().drop_guard();
    let socket = CuttableStream::new(socket, cut.clone());
    let Some(result) = serve_within_login_grace(bastion, socket, handler, &state, peer).await else {
        return;
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "SSH connection ended with an error");
    }
    let session = lock(&state).session.take();
    if let Some(session) = session {
        close_what_the_user_left(bastion, &session).await;
    }
}

/// Runs the SSH connection to its end, holding the client to `login_grace` until it has authenticated:
/// one that stalls before its version string is dropped, one that has not signed in by then is
/// disconnected. `None` when the connection never got past its setup (already logged).
async fn serve_within_login_grace(
    bastion: &Bastion,
    socket: CuttableStream,
    handler: Connection,
    state: &Mutex<ConnectionState>,
    peer: SocketAddr,
) -> Option<Result<(), russh::Error>> {
    let grace = bastion.config.login_grace;
    let deadline = tokio::time::Instant::now() + grace;
    // The version exchange happens inside `run_stream`: a client that never sends its version is
    // dropped at the deadline too.
    let running = match tokio::time::timeout_at(
        deadline,
        server::run_stream(Arc::clone(&bastion.server_config), socket, handler),
    )
    .await
    {
        Ok(Ok(running)) => running,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "SSH connection setup failed");
            return None;
        }
        Err(_) => {
            tracing::info!(%peer, ?grace, "client stalled before its version string; dropped");
            return None;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let result = tokio::select! {
        result = &mut running => Some(result),
        () = tokio::time::sleep_until(deadline) => None,
    };
    Some(match result {
        Some(result) => result,
        None if lock(state).authenticated => running.await,
        None => {
            tracing::info!(%peer, ?grace, "client did not authenticate in time; disconnected");
            let _ = handle
                .disconnect(
                    Disconnect::ByApplication,
                    "Authentication timed out.".into(),
                    "en".into(),
                )
                .await;
            // Give the disconnect a moment to be written, then cut the connection whatever it does.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
            lock(state).cut.cancel();
            Ok(())
        }
    })
}

/// After the connection ended: a session still in the table was ended by the user (or the network),
/// not the registry, so its target is disconnected and the registry told.
async fn close_what_the_user_left(bastion: &Bastion, session: &LiveSession) {
    if bastion.live.remove(&session.session_id).is_none() {
        return;
    }
    session.ended.cancel();
    let target = session.target.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(target) = target {
        let _ = target
            .disconnect(Disconnect::ByApplication, "client disconnected", "en")
            .await;
    }
    bastion
        .agent
        .close_session(&session.session_id, EndReason::UserClosed, "client disconnected")
        .await;
    tracing::info!(session_id = %session.session_id, user = %session.user, "session closed by the user");
}

enum Mode {
    Authenticating,
    /// Signed in without a target: every channel prints the reachable targets and ends.
    Listing(String),
    Relaying {
        session: Arc<LiveSession>,
        target: Arc<TargetConnection>,
    },
    /// Refused after authentication; the disconnect is on its way.
    Closed,
}

/// The two halves of one relayed channel: `client` only while listing (when relaying, the pump task
/// owns it), `target` only when relaying.
struct Relay {
    client: Option<ChannelWriteHalf<Msg>>,
    target: Option<ChannelWriteHalf<russh::client::Msg>>,
    /// Waiters for the target's answers to requests, oldest first (SSH answers in order).
    replies: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>,
}

/// A channel request the user made, to pass on.
enum Request {
    Pty {
        term: String,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: Vec<(Pty, u32)>,
    },
    Env(String, String),
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

/// One user connection (russh calls it for everything the user sends).
struct Connection {
    bastion: Arc<Bastion>,
    peer: SocketAddr,
    state: Arc<Mutex<ConnectionState>>,
    /// After a key was accepted: the user and what the login asked for.
    login: Option<(User, Result<Option<String>, LoginError>)>,
    mode: Mode,
    channels: HashMap<ChannelId, Relay>,
}

impl Connection {
    /// The user named by a login, if the login's user part is valid and known; with what the rest of
    /// the login asks for.
    fn user_of(&self, login: &str) -> Option<(User, Result<Option<String>, LoginError>)> {
        let (user_part, target) = match login.split_once('+') {
            Some((user, _)) => (user, login::parse(login).map(|login| login.target)),
            None => (login, login::parse(login).map(|login| login.target)),
        };
        if !login::is_user_name(user_part) {
            return None;
        }
        Some((self.bastion.users.get(user_part)?, target))
    }

    fn refuse(&mut self, session: &mut Session, text: &str) -> Result<(), russh::Error> {
        self.mode = Mode::Closed;
        session.disconnect(Disconnect::ByApplication, text, "en")
    }

    /// Admission, then the target connection; switches to relaying or refuses.
    async fn open(&mut self, user: User, target_name: String, session: &mut Session) -> Result<(), russh::Error> {
        let Some(mut target) = self
            .bastion
            .reachable(&user)
            .into_iter()
            .find(|target| target.name == target_name)
            .cloned()
        else {
            // The same answer for a target that does not exist and one the user may not reach.
            tracing::info!(peer = %self.peer, user = %user.name, target = %target_name, "unknown or unreachable target");
            let text = format!("Unknown target \"{target_name}\". {}", self.targets_sentence(&user));
            return self.refuse(session, &text);
        };
        // The user's own account on the target, when the users file gives one.
        if let Some(account) = user.account_on(&target.name) {
            target.user = account.to_owned();
        }
        let device = device_of(session.remote_sshid());
        let live = match self.admit(&user, &target, device, session.handle()).await {
            Ok(live) => live,
            Err(text) => return self.refuse(session, &text),
        };
        // In the table before the target connection is made: a kill that comes meanwhile finds it.
        self.bastion.live.insert(Arc::clone(&live));
        lock(&self.state).session = Some(Arc::clone(&live));
        let connected = tokio::select! {
            connected = target::connect(&target, Arc::clone(&self.bastion.client_key), self.bastion.config.connect_timeout) => Some(connected),
            () = live.ended.cancelled() => None,
        };
        match connected {
            // Ended by the registry meanwhile: its notice and disconnect are queued already.
            None => {
                self.mode = Mode::Closed;
                Ok(())
            }
            Some(Err(error)) => {
                self.target_unreachable(&live, &target, &error.to_string()).await;
                self.refuse(session, &format!("Cannot reach {}: {error}", target.name))
            }
            Some(Ok(connection)) => {
                self.relay(live, Arc::new(connection), &target).await;
                Ok(())
            }
        }
    }

    /// Asks the registry; the live session when allowed, the text for the user when not.
    async fn admit(
        &self,
        user: &User,
        target: &TargetConfig,
        device: String,
        client: server::Handle,
    ) -> Result<Arc<LiveSession>, String> {
        let start = SessionStart {
            user: user.name.clone(),
            resource_name: target.name.clone(),
            resource_type: ResourceType::Ssh as i32,
            device,
            client_ip: self.peer.ip().to_canonical().to_string(),
            started_at: Some(SystemTime::now().into()),
            user_groups: user.groups.clone(),
        };
        let admission = match self.bastion.agent.open_session(start).await {
            Ok(admission) => admission,
            Err(error) => {
                tracing::warn!(peer = %self.peer, user = %user.name, %error, "admission failed");
                crate::metrics::login("error");
                return Err(format!("The gateway cannot open sessions right now: {error}"));
            }
        };
        if !admission.allowed {
            tracing::info!(peer = %self.peer, user = %user.name, target = %target.name, reason = %admission.reason, "session refused");
            crate::metrics::login("refused");
            return Err(format!("Access refused: {}", admission.reason));
        }
        Ok(Arc::new(LiveSession::new(
            admission.session_id.clone(),
            user.name.clone(),
            target.name.clone(),
            client,
            lock(&self.state).cut.clone(),
        )))
    }

    /// The target could not be reached: the session is closed at the registry (unless it ended first).
    async fn target_unreachable(&self, live: &LiveSession, target: &TargetConfig, error: &str) {
        tracing::warn!(session_id = %live.session_id, target = %target.name, %error, "target unreachable");
        crate::metrics::login("target_unreachable");
        if self.bastion.live.remove(&live.session_id).is_some() {
            self.bastion
                .agent
                .close_session(
                    &live.session_id,
                    EndReason::GatewayClosed,
                    &format!("target unreachable: {error}"),
                )
                .await;
        }
        lock(&self.state).session = None;
    }

    /// Connected to the target: relay from now on (unless the registry ended the session meanwhile).
    async fn relay(&mut self, live: Arc<LiveSession>, connection: Arc<TargetConnection>, target: &TargetConfig) {
        *live.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&connection));
        if live.ended.is_cancelled() {
            let _ = connection
                .disconnect(Disconnect::ByApplication, "session ended", "en")
                .await;
            self.mode = Mode::Closed;
            return;
        }
        tracing::info!(
            session_id = %live.session_id,
            user = %live.user,
            target = %target.name,
            account = %target.user,
            peer = %self.peer,
            "session open"
        );
        crate::metrics::login("admitted");
        crate::metrics::session_opened();
        self.mode = Mode::Relaying {
            session: live,
            target: connection,
        };
    }

    fn targets_sentence(&self, user: &User) -> String {
        let names: Vec<&str> = self.bastion.reachable(user).iter().map(|t| t.name.as_str()).collect();
        if names.is_empty() {
            "You may not reach any target through this gateway.".to_owned()
        } else {
            format!("Targets you may reach: {}.", names.join(", "))
        }
    }

    fn listing(&self, user: &User) -> String {
        let targets = self.bastion.reachable(user);
        let mut text = format!("Hello {}. ", user.name);
        if targets.is_empty() {
            text.push_str("You may not reach any target through this gateway.\r\n");
            return text;
        }
        text.push_str("Targets you may reach (log in as user+target):\r\n");
        for target in targets {
            text.push_str(&format!(
                "  {:<24} ssh {}+{}@<this gateway>\r\n",
                target.name, user.name, target.name
            ));
        }
        text
    }

    /// Passes a request on to the target and answers the user with the target's answer.
    async fn relay_request(
        &mut self,
        channel: ChannelId,
        request: Request,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if let Request::Pty { .. } = request
            && let Mode::Relaying { session: live, .. } = &self.mode
        {
            live.set_pty(channel);
        }
        let answer = if let Mode::Listing(text) = &self.mode {
            let text = text.clone();
            match self.channels.get_mut(&channel) {
                None => false,
                Some(relay) => {
                    // Any request is fine; a shell, command or subsystem prints the list and ends.
                    if matches!(request, Request::Shell | Request::Exec(_) | Request::Subsystem(_))
                        && let Some(client) = relay.client.take()
                    {
                        tokio::spawn(async move {
                            let _ = client.data_bytes(text.into_bytes()).await;
                            let _ = client.exit_status(0).await;
                            let _ = client.eof().await;
                            let _ = client.close().await;
                        });
                    }
                    true
                }
            }
        } else if let (
            Mode::Relaying { session: live, .. },
            Some(Relay {
                target: Some(target),
                replies,
                ..
            }),
        ) = (&self.mode, self.channels.get(&channel))
        {
            let (sender, receiver) = oneshot::channel();
            lock(replies).push_back(sender);
            if send_request(target, request).await.is_err() {
                lock(replies).pop_back();
                false
            } else {
                tokio::select! {
                    answer = tokio::time::timeout(self.bastion.config.request_timeout, receiver) => {
                        answer.ok().and_then(Result::ok).unwrap_or(false)
                    }
                    () = live.ended.cancelled() => false,
                }
            }
        } else {
            false
        };
        if answer {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Mode::Relaying { .. } = self.mode {
            crate::metrics::session_closed();
        }
    }
}

/// The client's software version from its identification string (`OpenSSH_9.2p1 Debian-2`), the
/// session's device.
fn device_of(remote_id: &[u8]) -> String {
    let text = String::from_utf8_lossy(remote_id);
    let text = text.trim();
    let text = text.strip_prefix("SSH-2.0-").unwrap_or(text);
    let device: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(256)
        .collect();
    if device.trim().is_empty() {
        "unknown SSH client".to_owned()
    } else {
        device
    }
}

async fn send_request(target: &ChannelWriteHalf<russh::client::Msg>, request: Request) -> Result<(), russh::Error> {
    match request {
        Request::Pty {
            term,
            cols,
            rows,
            pix_width,
            pix_height,
            modes,
        } => {
            target
                .request_pty(true, &term, cols, rows, pix_width, pix_height, &modes)
                .await
        }
        Request::Env(name, value) => target.set_env(true, name, value).await,
        Request::Shell => target.request_shell(true).await,
        Request::Exec(command) => target.exec(true, command).await,
        Request::Subsystem(name) => target.request_subsystem(true, name).await,
    }
}

/// Forwards what the target sends on one channel to the user, until either side closes it.
async fn pump_from_target(
    mut from: russh::ChannelReadHalf,
    to: ChannelWriteHalf<Msg>,
    client: server::Handle,
    replies: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>,
    live: Arc<LiveSession>,
    agent: Agent,
) {
    let id = to.id();
    loop {
        let message = tokio::select! {
            message = from.wait() => message,
            () = live.ended.cancelled() => return,
        };
        let sent = match message {
            None => {
                let _ = to.close().await;
                break;
            }
            Some(ChannelMsg::Data { data }) => {
                crate::metrics::relayed("out", data.len());
                let out = live.counters.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                agent.record_activity(
                    &live.session_id,
                    None,
                    live.counters.bytes_in.load(Ordering::Relaxed),
                    out,
                );
                cancellable(&live, to.data_bytes(data)).await
            }
            Some(ChannelMsg::ExtendedData { data, ext }) => {
                crate::metrics::relayed("out", data.len());
                let out = live.counters.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                agent.record_activity(
                    &live.session_id,
                    None,
                    live.counters.bytes_in.load(Ordering::Relaxed),
                    out,
                );
                cancellable(&live, to.extended_data_bytes(ext, data)).await
            }
            Some(ChannelMsg::Eof) => to.eof().await.is_ok(),
            Some(ChannelMsg::Close) => {
                let _ = to.close().await;
                break;
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => to.exit_status(exit_status).await.is_ok(),
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            }) => client
                .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                .await
                .is_ok(),
            Some(ChannelMsg::XonXoff { client_can_do }) => client.xon_xoff_request(id, client_can_do).await.is_ok(),
            Some(ChannelMsg::Success) => {
                answer(&replies, true);
                true
            }
            Some(ChannelMsg::Failure) => {
                answer(&replies, false);
                true
            }
            Some(_) => true,
        };
        if !sent {
            break;
        }
    }
    // Whoever still waits for an answer on this channel gets a refusal.
    lock(&replies).clear();
    live.remove_channel(id);
}

async fn cancellable<E>(live: &LiveSession, send: impl Future<Output = Result<(), E>>) -> bool {
    tokio::select! {
        sent = send => sent.is_ok(),
        () = live.ended.cancelled() => false,
    }
}

fn answer(replies: &Mutex<VecDeque<oneshot::Sender<bool>>>, ok: bool) {
    if let Some(waiter) = lock(replies).pop_front() {
        let _ = waiter.send(ok);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        Ok(match self.user_of(user) {
            Some((known, _)) if known.has_key(offer.public_key) => Auth::Accept,
            _ => Auth::reject(),
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        match self.user_of(user) {
            Some((known, target)) if known.has_key(key.public_key) => {
                tracing::debug!(peer = %self.peer, user = %known.name, "public key accepted");
                self.login = Some((known, target));
                Ok(Auth::Accept)
            }
            _ => {
                tracing::info!(peer = %self.peer, login = %user.escape_debug(), fingerprint = %fingerprint(key.public_key), "sign-in refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        lock(&self.state).authenticated = true;
        let Some((user, target)) = self.login.clone() else {
            return self.refuse(session, "Authentication state lost; try again.");
        };
        match target {
            Err(error) => {
                tracing::info!(peer = %self.peer, user = %user.name, %error, "malformed login");
                crate::metrics::login("malformed");
                let text = format!("Malformed login: {error}. {}", self.targets_sentence(&user));
                self.refuse(session, &text)
            }
            Ok(None) => {
                crate::metrics::login("listing");
                self.mode = Mode::Listing(self.listing(&user));
                Ok(())
            }
            Ok(Some(target)) => self.open(user, target, session).await,
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let id = channel.id();
        // The read half is not used: requests and data come through this handler, in order.
        let (_, client) = channel.split();
        match &self.mode {
            Mode::Listing(_) => {
                self.channels.insert(
                    id,
                    Relay {
                        client: Some(client),
                        target: None,
                        replies: Arc::default(),
                    },
                );
                reply.accept().await;
            }
            Mode::Relaying { session: live, target } => {
                let opened = tokio::select! {
                    opened = target.channel_open_session() => Some(opened),
                    () = live.ended.cancelled() => None,
                };
                match opened {
                    Some(Ok(target_channel)) => {
                        let (from_target, to_target) = target_channel.split();
                        let replies: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>> = Arc::default();
                        live.add_channel(id);
                        tokio::spawn(pump_from_target(
                            from_target,
                            client,
                            live.client.clone(),
                            Arc::clone(&replies),
                            Arc::clone(live),
                            self.bastion.agent.clone(),
                        ));
                        self.channels.insert(
                            id,
                            Relay {
                                client: None,
                                target: Some(to_target),
                                replies,
                            },
                        );
                        reply.accept().await;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(session_id = %live.session_id, %error, "the target refused a channel");
                        reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    }
                    None => reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
                }
            }
            Mode::Authenticating | Mode::Closed => reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
        }
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        self.forward_data(channel, None, data).await;
        Ok(())
    }

    async fn extended_data(
        &mut self,
        channel: ChannelId,
        code: u32,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward_data(channel, Some(code), data).await;
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(Relay {
            target: Some(target), ..
        }) = self.channels.get(&channel)
        {
            let _ = target.eof().await;
        }
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(relay) = self.channels.remove(&channel)
            && let Some(target) = relay.target
        {
            let _ = target.close().await;
        }
        if let Mode::Relaying { session: live, .. } = &self.mode {
            live.remove_channel(channel);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Pty {
            term: term.to_owned(),
            cols,
            rows,
            pix_width,
            pix_height,
            modes: modes.to_vec(),
        };
        self.relay_request(channel, request, session).await
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay_request(channel, Request::Env(name.to_owned(), value.to_owned()), session)
            .await
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.relay_request(channel, Request::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay_request(channel, Request::Exec(command.to_vec()), session)
            .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.relay_request(channel, Request::Subsystem(name.to_owned()), session)
            .await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Relay {
            target: Some(target), ..
        }) = self.channels.get(&channel)
        {
            let _ = target.window_change(cols, rows, pix_width, pix_height).await;
        }
        Ok(())
    }

    async fn signal(&mut self, channel: ChannelId, signal: Sig, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(Relay {
            target: Some(target), ..
        }) = self.channels.get(&channel)
        {
            let _ = target.signal(signal).await;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

impl Connection {
    /// User input: counted, noted as activity, and passed on (waiting for the target's window).
    async fn forward_data(&mut self, channel: ChannelId, ext: Option<u32>, data: &[u8]) {
        let Mode::Relaying { session: live, .. } = &self.mode else {
            return;
        };
        let Some(Relay {
            target: Some(target), ..
        }) = self.channels.get(&channel)
        else {
            return;
        };
        live.input();
        crate::metrics::relayed("in", data.len());
        let total_in = live.counters.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
        self.bastion.agent.record_activity(
            &live.session_id,
            Some(SystemTime::now()),
            total_in,
            live.counters.bytes_out.load(Ordering::Relaxed),
        );
        let bytes = data.to_vec();
        let sent = match ext {
            None => cancellable(live, target.data_bytes(bytes)).await,
            Some(code) => cancellable(live, target.extended_data_bytes(code, bytes)).await,
        };
        if !sent {
            tracing::debug!(session_id = %live.session_id, "input not delivered: the target channel is gone or the session ended");
        }
    }
}

fn fingerprint(key: &PublicKey) -> String {
    crate::keys::fingerprint(key)
}
