//! Strict fail mode: once the link has been down for longer than the grace period, end every session
//! the gateway holds and refuse new ones until the link is back.
//!
//! A task of its own follows the link state, so the grace period runs on time however long a
//! connection attempt takes (the link task may sit in a connect or welcome timeout for seconds).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;

use futures::FutureExt;

use crate::CommandResult;
use crate::shared::{LinkState, Shared};

fn is_up(state: &LinkState) -> bool {
    matches!(state, LinkState::Connected { .. })
}

/// Runs until shutdown (strict mode only; best effort has nothing to enforce).
pub(crate) async fn run(shared: Arc<Shared>) {
    let grace = shared.config.link_grace;
    let mut states = shared.link_state.subscribe();
    loop {
        // Wait for the link to be down. At start it is (connecting), so the grace period also bounds
        // how long a gateway that cannot reach the registry at all runs before refusing with a clear error.
        let down = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            down = states.wait_for(|state| !is_up(state)) => down.is_ok(),
        };
        if !down {
            return;
        }
        let back_in_time = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            up = states.wait_for(is_up) => match up {
                Ok(_) => true,
                Err(_) => return,
            },
            () = tokio::time::sleep(grace) => false,
        };
        if back_in_time {
            continue;
        }
        end_every_session(&shared);
        let up = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            up = states.wait_for(is_up) => up.is_ok(),
        };
        if !up {
            return;
        }
        tracing::info!(
            gateway_id = shared.config.gateway_id,
            "the link to the registry is back; admitting sessions again"
        );
    }
}

/// Hands every held session to the gateway's terminate handler, each on a task of its own (as
/// registry kills are), and refuses admissions from now on.
fn end_every_session(shared: &Arc<Shared>) {
    let grace = shared.config.link_grace;
    let Some(commands) = shared.lock().fail_closed(SystemTime::now()) else {
        // A link came up just now: nothing to enforce.
        return;
    };
    tracing::warn!(
        gateway_id = shared.config.gateway_id,
        ?grace,
        sessions = commands.len(),
        "the link to the registry has been down for longer than the grace period; strict fail mode: ending every session and refusing new ones until it is back"
    );
    for command in commands {
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            // A panicking handler must not leave the session marked as being ended forever.
            let result = match AssertUnwindSafe(shared.handler.terminate(&command))
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(_) => CommandResult::Failed("the gateway's terminate handler panicked".to_owned()),
            };
            tracing::info!(
                session_id = command.session_id,
                ?result,
                "session ended in strict fail mode"
            );
            shared
                .lock()
                .finish_local_end(&command, &result, grace, SystemTime::now());
        });
    }
}
