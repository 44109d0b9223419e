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

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),

    /// No connection to the registry.
    #[error(
        "cannot reach the Vigil registry at {server} ({reason}). Is it running? Start it with `make run`, \
         or point --server / VIGIL_SERVER at it."
    )]
    Unreachable { server: String, reason: String },

    /// Connected (or connecting), but no answer within `--timeout`.
    #[error(
        "the Vigil registry at {server} did not answer within {}; try again, or allow longer with --timeout",
        humantime::format_duration(*after)
    )]
    TimedOut { server: String, after: Duration },

    /// The registry answered with an error status.
    #[error("{}", server_message(*code, message))]
    Server { code: Code, message: String },

    /// The registry closed a watch stream that is meant to run until Ctrl-C.
    #[error("the Vigil registry at {server} ended the watch stream")]
    WatchEnded { server: String },

    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code: 1 for errors the registry answered with, 2 for usage errors, 3 when the
    /// registry could not be reached or did not answer.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable { .. } | CliError::TimedOut { .. } => EXIT_UNREACHABLE,
            CliError::Server { .. } | CliError::WatchEnded { .. } | CliError::Output(_) => EXIT_SERVER,
        }
    }

    /// Whether the reader of our output went away (`sessionctl ... | head`), which is not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Classifies a failed call. tonic reports transport failures (refused, reset, not HTTP/2) as statuses
    /// too, but only those carry a `source`; a status the registry sent has none.
    pub(crate) fn from_status(status: Status, server: &str) -> CliError {
        if status.source().is_some() && matches!(status.code(), Code::Unavailable | Code::Unknown) {
            return CliError::Unreachable {
                server: server.to_owned(),
                reason: transport_reason(&status),
            };
        }
        CliError::Server {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// Classifies a failure to open the channel.
    pub(crate) fn from_connect(error: &tonic::transport::Error, server: &str) -> CliError {
        CliError::Unreachable {
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

fn server_message(code: Code, message: &str) -> String {
    let mut text = if message.is_empty() {
        format!("the registry refused the call ({})", code_name(code))
    } else {
        format!("{message} ({})", code_name(code))
    };
    match code {
        Code::Unauthenticated => text.push_str("; pass a token with --token or VIGIL_TOKEN"),
        // What a plain HTTP server, or another gRPC service, answers.
        Code::Unimplemented => text.push_str("; is --server pointing at a Vigil registry?"),
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
        let error = CliError::from_status(Status::not_found("no session 3f2a9c1b-…"), "http://x");
        assert_eq!(error.to_string(), "no session 3f2a9c1b-… (not found)");
        assert_eq!(error.exit_code(), 1);

        let error = CliError::from_status(Status::unimplemented("grpc-status header missing"), "http://x");
        assert_eq!(
            error.to_string(),
            "grpc-status header missing (unimplemented); is --server pointing at a Vigil registry?"
        );

        let error = CliError::from_status(Status::permission_denied(""), "http://x");
        assert_eq!(error.to_string(), "the registry refused the call (permission denied)");

        let error = CliError::from_status(Status::unauthenticated("missing bearer token"), "http://x");
        assert_eq!(
            error.to_string(),
            "missing bearer token (unauthenticated); pass a token with --token or VIGIL_TOKEN"
        );

        // Sent by the server, so it is the server's answer, not a transport failure.
        let error = CliError::from_status(Status::unavailable("database is down"), "http://x");
        assert_eq!(error.to_string(), "database is down (unavailable)");
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn transport_failures_inside_a_status_are_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        let error = CliError::from_status(status, "http://127.0.0.1:1");
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
                server: "s".into(),
                after: Duration::from_secs(10)
            }
            .exit_code(),
            3
        );
        assert_eq!(CliError::WatchEnded { server: "s".into() }.exit_code(), 1);
        let pipe = CliError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
    }

    #[test]
    fn timeouts_say_how_long_was_waited() {
        let error = CliError::TimedOut {
            server: "http://r:7400".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            error.to_string(),
            "the Vigil registry at http://r:7400 did not answer within 1s 500ms; try again, or allow longer with --timeout"
        );
    }
}
