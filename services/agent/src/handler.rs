//! What the gateway plugs into the agent: how it carries out the registry's commands.

use async_trait::async_trait;
use vigil_proto::v1::{CommandOutcome, IdleWarning, Lock, TerminateCommand};

/// The gateway's side of the link: the agent calls it when the registry asks for something.
///
/// `terminate` runs on a task of its own, so it may take its time (closing a connection, flushing a
/// recording). `idle_warning` and `locks_changed` run on the link task, in the order the registry sent
/// them: return quickly, and spawn if there is slow work to do.
#[async_trait]
pub trait GatewayHandler: Send + Sync + 'static {
    /// End this session and show its user `command.user_message`.
    ///
    /// Only called for sessions the agent holds, and at most once per `command_id` (the registry re-sends
    /// commands until acknowledged; the agent acknowledges re-sends itself). After [`CommandResult::Done`]
    /// or [`CommandResult::NotFound`] the session leaves the agent's table; there is no need to call
    /// [`Agent::close_session`](crate::Agent::close_session) for it (if the gateway's teardown does anyway,
    /// that call is ignored).
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult;

    /// Tell the session's user that the session will soon be ended for inactivity. Only called for sessions
    /// the agent holds.
    async fn idle_warning(&self, _warning: &IdleWarning) {}

    /// The set of locks in force changed; `locks` is the whole new set (also readable through
    /// [`Agent::locks`](crate::Agent::locks)).
    async fn locks_changed(&self, _locks: &[Lock]) {}
}

/// How a [`GatewayHandler::terminate`] went; becomes the outcome of the command's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    /// The session was ended.
    Done,
    /// The gateway did not have the session any more: nothing to do.
    NotFound,
    /// The gateway tried and failed; the text says why (it is recorded by the registry, cut at 256
    /// characters).
    Failed(String),
}

impl CommandResult {
    /// The protocol outcome and detail of this result.
    pub(crate) fn outcome(&self) -> (CommandOutcome, String) {
        match self {
            CommandResult::Done => (CommandOutcome::Done, String::new()),
            CommandResult::NotFound => (CommandOutcome::NotFound, String::new()),
            CommandResult::Failed(detail) => (CommandOutcome::Failed, detail.clone()),
        }
    }
}
