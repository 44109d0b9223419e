//! Graceful shutdown: a signal cancels one token that every part of a service watches, and the
//! service then waits a bounded time for its tasks to finish.

use std::time::Duration;

use futures::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled when the process receives SIGTERM or SIGINT (Ctrl-C on
/// other platforms). Which signal arrived is logged.
///
/// The signal handlers are installed before this returns, so a signal sent right afterwards is
/// not lost. Must be called inside a Tokio runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let signals = Signals::install();
    let cancel = token.clone();
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::info!(signal, "shutdown requested");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        // Failing to install a handler is not fatal: the process still dies on that signal, it
        // just does not drain first.
        let install = |kind: SignalKind, name: &str| {
            signal(kind)
                .inspect_err(|error| tracing::error!(%error, signal = name, "cannot install signal handler"))
                .ok()
        };
        Self {
            terminate: install(SignalKind::terminate(), "SIGTERM"),
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Waits for the first of the signals and names it.
    async fn recv(mut self) -> &'static str {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(self.terminate.as_mut()) => "SIGTERM",
            () = next(self.interrupt.as_mut()) => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self
    }

    async fn recv(self) -> &'static str {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C; shutting down now");
        }
        "Ctrl-C"
    }
}

/// Waits for `handles` to finish, for at most `deadline`; tasks still running then are aborted.
///
/// Returns `true` when every task finished by itself in time. A task that panicked counts as
/// finished; its panic is logged.
pub async fn join_with_deadline(handles: Vec<JoinHandle<()>>, deadline: Duration) -> bool {
    let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
    match tokio::time::timeout(deadline, join_all(handles)).await {
        Ok(results) => {
            for error in results.into_iter().filter_map(Result::err) {
                tracing::error!(%error, "task failed during shutdown");
            }
            true
        }
        Err(_elapsed) => {
            let running = aborts.iter().filter(|task| !task.is_finished()).count();
            tracing::warn!(running, ?deadline, "tasks did not finish in time; aborting them");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn finished_tasks_are_joined() {
        let handles = (0..3)
            .map(|_| tokio::spawn(async { tokio::task::yield_now().await }))
            .collect();
        assert!(join_with_deadline(handles, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_panicked_task_counts_as_finished() {
        let handles = vec![tokio::spawn(async { panic!("task bug") })];
        assert!(join_with_deadline(handles, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn stuck_tasks_are_aborted_at_the_deadline() {
        // The task holds the sender; when it is aborted the sender is dropped and the receiver
        // sees it.
        let (sender, receiver) = oneshot::channel::<()>();
        let stuck = tokio::spawn(async move {
            let _sender = sender;
            std::future::pending::<()>().await;
        });
        let quick = tokio::spawn(async {});
        assert!(!join_with_deadline(vec![stuck, quick], Duration::from_millis(50)).await);
        assert!(receiver.await.is_err(), "the stuck task was aborted");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        // Handlers are installed by the time `shutdown_on_signal` returns, so sending SIGTERM to
        // ourselves is safe: it is caught, not fatal.
        let token = shutdown_on_signal();
        assert!(!token.is_cancelled());
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), token.cancelled())
            .await
            .expect("token cancelled by SIGTERM");
    }
}
