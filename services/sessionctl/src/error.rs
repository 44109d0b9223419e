//! What can go wrong, worded for the person at the terminal, and the exit code each failure gets.

use std::error::Error as _;
use std::time::Duration;

use tonic::{Code, Status};

/// Exit code for usage errors (clap uses the same one for bad flags).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for errors the registry answered with.
pub const EXIT_SERVER: u8 = 1;
/// Exit code when no answer came: the registry could not be reached, or did not answer in time.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code when the person declined a confirmation: nothing was done.
pub const EXIT_ABORTED: u8 = 4;

/// Which Vigil service a call went to, so a failure names it and the flag that points at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Registry,
    Termination,
    Policy,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Registry => "Vigil registry",
            Service::Termination => "Vigil termination service",
            Service::Policy => "Vigil policy service",
        }
    }

    /// The flags that say where the service is.
    fn flags(self) -> &'static str {
        match self {
            Service::Registry => "--server / VIGIL_SERVER",
            Service::Termination => "--termination-server / VIGIL_TERMINATION_SERVER (default: --server)",
            Service::Policy => "--policy-server / VIGIL_POLICY_SERVER (default: --server)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),

    /// No connection to the service.
    #[error(
        "cannot reach the {} at {server} ({reason}). Is it running? Start it with `make run`, or point {} at it.",
        service.name(),
        service.flags()
    )]
    Unreachable {
        service: Service,
        server: String,
        reason: String,
    },

    /// Connected (or connecting), but no answer within `--timeout`.
    #[error(
        "the {} at {server} did not answer within {}; try again, or allow longer with --timeout",
        service.name(),
        humantime::format_duration(*after)
    )]
    TimedOut {
        service: Service,
        server: String,
        after: Duration,
    },

    /// The service answered with an error status.
    #[error("{}", server_message(*service, *code, message))]
    Server {
        service: Service,
        code: Code,
        message: String,
    },

    /// The registry closed a watch stream that is meant to run until Ctrl-C.
    #[error("the Vigil registry at {server} ended the watch stream")]
    WatchEnded { server: String },

    /// The person answered no (or nothing) to a confirmation; it holds what was not done ("ended",
    /// "deleted").
    #[error("aborted; nothing was {0}")]
    Aborted(&'static str),

    /// `sessions end`: the selected sessions changed between the preview and the confirmation, so the
    /// server refused to end a set the person did not see. `now` is the new count, when it could be asked.
    #[error(
        "the set of sessions changed since the preview{}; nothing was ended; run the command again",
        now.map(|n| format!(" (now {n})")).unwrap_or_default()
    )]
    PreviewChanged { now: Option<usize> },

    /// Reading the person's answer failed.
    #[error("cannot read the answer: {0}")]
    Input(std::io::Error),

    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code: 1 for errors the services answered with, 2 for usage errors, 3 when a
    /// service could not be reached or did not answer, 4 when the person declined a confirmation.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable { .. } | CliError::TimedOut { .. } => EXIT_UNREACHABLE,
            CliError::Aborted(_) => EXIT_ABORTED,
            CliError::Server { .. }
            | CliError::WatchEnded { .. }
            | CliError::PreviewChanged { .. }
            | CliError::Input(_)
            | CliError::Output(_) => EXIT_SERVER,
        }
    }

    /// The gRPC code when the service answered with an error status.
    pub fn server_code(&self) -> Option<Code> {
        match self {
            CliError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the reader of our output went away (`sessionctl ... | head`), which is not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Classifies a failed call. tonic reports transport failures (refused, reset, not HTTP/2) as statuses
    /// too, but only those carry a `source`; a status the registry sent has none.
    pub(crate) fn from_status(status: Status, service: Service, server: &str) -> CliError {
        if status.source().is_some() && matches!(status.code(), Code::Unavailable | Code::Unknown) {
            return CliError::Unreachable {
                service,
                server: server.to_owned(),
                reason: transport_reason(&status),
            };
        }
        CliError::Server {
            service,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// Classifies a failure to open the channel.
    pub(crate) fn from_connect(error: &tonic::transport::Error, service: Service, server: &str) -> CliError {
        CliError::Unreachable {
            service,
            server: server.to_owned(),
            reason: transport_reason(error),
        }
    }
}

/// The most telling words for a transport failure: the OS's view of the socket when there is one
/// ("connection refused"), otherwise the innermost error's message.
fn transport_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        innermost = e;
        current = e.source();
    }
    innermost.to_string()
}

fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        ErrorKind::TimedOut => "timed out".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        // Name resolution failures and the rest: the OS message says it best.
        _ => error.to_string(),
    }
}

fn server_message(service: Service, code: Code, message: &str) -> String {
    let mut text = if message.is_empty() {
        format!("the {} refused the call ({})", service.name(), code_name(code))
    } else {
        format!("{message} ({})", code_name(code))
    };
    match code {
        Code::Unauthenticated => text
            .push_str("; pass a token with --token, VIGIL_TOKEN or the config file (~/.config/vigil/sessionctl.toml)"),
        // What a plain HTTP server, or another gRPC service, answers.
        Code::Unimplemented => text.push_str(&format!("; is {} pointing at a {}?", service.flags(), service.name())),
        _ => {}
    }
    text
}

/// A gRPC code's name as words in lower case: `not found`, `permission denied`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_read_as_message_and_code() {
        let registry = Service::Registry;
        let error = CliError::from_status(Status::not_found("no session 3f2a9c1b-…"), registry, "http://x");
        assert_eq!(error.to_string(), "no session 3f2a9c1b-… (not found)");
        assert_eq!(error.exit_code(), 1);

        let error = CliError::from_status(
            Status::unimplemented("grpc-status header missing"),
            registry,
            "http://x",
        );
        assert_eq!(
            error.to_string(),
            "grpc-status header missing (unimplemented); is --server / VIGIL_SERVER pointing at a Vigil registry?"
        );

        let error = CliError::from_status(Status::permission_denied(""), registry, "http://x");
        assert_eq!(
            error.to_string(),
            "the Vigil registry refused the call (permission denied)"
        );

        let error = CliError::from_status(Status::unauthenticated("missing bearer token"), registry, "http://x");
        assert_eq!(
            error.to_string(),
            "missing bearer token (unauthenticated); pass a token with --token, VIGIL_TOKEN or the config file \
             (~/.config/vigil/sessionctl.toml)"
        );

        // Sent by the server, so it is the server's answer, not a transport failure.
        let error = CliError::from_status(Status::unavailable("database is down"), registry, "http://x");
        assert_eq!(error.to_string(), "database is down (unavailable)");
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn termination_service_failures_name_it_and_its_flag() {
        let error = CliError::from_status(Status::unimplemented(""), Service::Termination, "http://x");
        assert_eq!(
            error.to_string(),
            "the Vigil termination service refused the call (unimplemented); is --termination-server / \
             VIGIL_TERMINATION_SERVER (default: --server) pointing at a Vigil termination service?"
        );
        let error = CliError::TimedOut {
            service: Service::Termination,
            server: "http://t:7401".into(),
            after: Duration::from_secs(2),
        };
        assert!(
            error
                .to_string()
                .starts_with("the Vigil termination service at http://t:7401 did not answer within 2s"),
            "{error}"
        );
    }

    #[test]
    fn policy_service_failures_name_it_and_its_flag() {
        let error = CliError::from_status(Status::unimplemented(""), Service::Policy, "http://x");
        assert_eq!(
            error.to_string(),
            "the Vigil policy service refused the call (unimplemented); is --policy-server / VIGIL_POLICY_SERVER \
             (default: --server) pointing at a Vigil policy service?"
        );
        let error = CliError::from_status(
            Status::invalid_argument("idle_timeout must exceed idle_warning_after"),
            Service::Policy,
            "http://x",
        );
        assert_eq!(
            error.to_string(),
            "idle_timeout must exceed idle_warning_after (invalid argument)"
        );
        assert_eq!(error.exit_code(), EXIT_SERVER);
    }

    #[test]
    fn a_changed_preview_says_to_run_again() {
        let error = CliError::PreviewChanged { now: Some(4) };
        assert_eq!(
            error.to_string(),
            "the set of sessions changed since the preview (now 4); nothing was ended; run the command again"
        );
        assert_eq!(error.exit_code(), EXIT_SERVER);
        let error = CliError::PreviewChanged { now: None };
        assert_eq!(
            error.to_string(),
            "the set of sessions changed since the preview; nothing was ended; run the command again"
        );
    }

    #[test]
    fn transport_failures_inside_a_status_are_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        let error = CliError::from_status(status, Service::Registry, "http://127.0.0.1:1");
        assert_eq!(error.exit_code(), 3);
        assert!(
            error
                .to_string()
                .starts_with("cannot reach the Vigil registry at http://127.0.0.1:1 (connection refused).")
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            CliError::TimedOut {
                service: Service::Registry,
                server: "s".into(),
                after: Duration::from_secs(10)
            }
            .exit_code(),
            3
        );
        assert_eq!(CliError::WatchEnded { server: "s".into() }.exit_code(), 1);
        assert_eq!(CliError::Aborted("ended").exit_code(), 4);
        assert_eq!(CliError::Aborted("ended").to_string(), "aborted; nothing was ended");
        assert_eq!(CliError::Aborted("deleted").to_string(), "aborted; nothing was deleted");
        let pipe = CliError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
    }

    #[test]
    fn timeouts_say_how_long_was_waited() {
        let error = CliError::TimedOut {
            service: Service::Registry,
            server: "http://r:7400".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            error.to_string(),
            "the Vigil registry at http://r:7400 did not answer within 1s 500ms; try again, or allow longer with --timeout"
        );
    }
}
