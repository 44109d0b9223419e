//! Accepting connections until shutdown: the one loop the SSH bastion, the web proxy and both demo
//! servers share.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long to wait after a failed accept before the next one.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The next connection on `listener`, or `None` once `shutdown` is cancelled. A failed accept (out
/// of file descriptors and the like) is logged and tried again after a pause rather than in a spin.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
}
