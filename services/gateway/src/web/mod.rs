//! The web proxy: an HTTP reverse proxy in front of "Web application" resources, where every browser
//! session is a Vigil session.
//!
//! - **Which application**: by the request's `Host` name (`web.resources[].hosts`), or
//!   `web.default_resource` for any other host. Paths are passed on as they are (behind the
//!   resource's base path, if its upstream URL has one).
//! - **Who**: the user named by the authenticating proxy in front, in `web.user_header` (groups in
//!   `web.groups_header`), believed only from `web.trusted_proxies`: the same headers from anywhere
//!   else are refused with a 403 page. In development, `web.dev_password` also accepts HTTP basic auth
//!   for the users of the users file.
//! - **Session**: the first request of a browser is admitted through the agent like an SSH login
//!   (type WEB, the `User-Agent` as device); a refusal is a 403 page with the reason. The session's
//!   random id goes into an HttpOnly, SameSite=Lax cookie, never forwarded to the application. Every
//!   request (and every WebSocket message from the browser) is activity; bytes are counted both ways.
//! - **Ending**: when the registry ends the session (a kill, a lock, the idle timeout, the maximum
//!   duration) its streaming responses and WebSockets are cut at once and the next request gets a page
//!   with the message, clearing the cookie. A browser silent for `web.session_idle` is closed by the
//!   gateway.

pub mod body;
pub mod demo_app;
pub mod headers;
pub mod identity;
pub mod pages;
pub mod proxy;
pub mod sessions;
pub mod settings;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::EndReason;

use crate::listen::next_connection;

pub use proxy::WebProxy;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves browsers until `shutdown`, then closes every browser session.
pub async fn serve(proxy: Arc<WebProxy>, listener: TcpListener, shutdown: CancellationToken) {
    let connections = Arc::new(AtomicUsize::new(0));
    let sweeper = tokio::spawn(sweep_idle(Arc::clone(&proxy), shutdown.clone()));
    loop {
        let Some((socket, peer)) = next_connection(&listener, &shutdown).await else {
            break;
        };
        if connections.load(Ordering::Relaxed) >= proxy.settings.max_connections {
            tracing::warn!(%peer, max = proxy.settings.max_connections, "too many web connections; refusing one");
            continue;
        }
        let _ = socket.set_nodelay(true);
        connections.fetch_add(1, Ordering::Relaxed);
        let proxy = Arc::clone(&proxy);
        let connections = Arc::clone(&connections);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(|request| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(proxy.handle(peer, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            tokio::select! {
                served = connection => if let Err(error) = served {
                    tracing::debug!(%peer, %error, "web connection ended with an error");
                },
                () = shutdown.cancelled() => {}
            }
            connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
    sweeper.abort();
    for session in proxy.sessions.all() {
        if proxy.sessions.remove(&session.session_id).is_some() {
            proxy
                .agent
                .close_session(&session.session_id, EndReason::GatewayClosed, "gateway shut down")
                .await;
        }
    }
}

/// Closes browser sessions without a request for `web.session_idle` (a closed tab sends nothing).
async fn sweep_idle(proxy: Arc<WebProxy>, shutdown: CancellationToken) {
    let idle = proxy.settings.session_idle;
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        for session in proxy.sessions.idle(idle) {
            if proxy.sessions.remove(&session.session_id).is_some() {
                tracing::info!(session_id = %session.session_id, user = %session.user, "browser session idle; closed");
                proxy
                    .agent
                    .close_session(
                        &session.session_id,
                        EndReason::UserClosed,
                        &format!("no request from the browser for {idle:?}"),
                    )
                    .await;
            }
        }
    }
}
