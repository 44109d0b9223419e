//! The one domain error type of Vigil and its mappings to and from `tonic::Status`.
//!
//! Handlers and domain code return [`ServiceError`]; the conversion into `Status` happens here and
//! nowhere else. The `match` has no catch-all arm: a new variant will not compile until it is mapped.
//! The way back — a status another Vigil service answered with, as an error of ours — is here too,
//! so that an error crossing two services reads the same as one raised locally.

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use tonic::{Code, Status};

/// Result of domain operations.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// What can go wrong in a Vigil service, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; the message names the field and what is wrong with it.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named thing does not exist; the message names it (`session "x" not found`). Built by
    /// [`ServiceError::not_found`], or taken as is from another service's answer.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the system is not in a state to carry it out.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller is known but may not do this; the message names the missing permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller did not prove who they are.
    #[error("{0}")]
    Unauthenticated(String),
    /// A dependency (database, bus, another service) cannot be reached right now; retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// The operation did not finish in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A limit was hit (too many requests, too much data).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A bug or an unexpected state: the details are logged, the caller gets a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// Shorthand for [`ServiceError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Shorthand for [`ServiceError::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound(format!("{kind} {:?} not found", id.into()))
    }

    /// Shorthand for [`ServiceError::Internal`].
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        // Caller mistakes are routine: info. Our own or our dependencies' failures: warn.
        let (code, message) = match &error {
            ServiceError::InvalidArgument(message) => (Code::InvalidArgument, message.clone()),
            ServiceError::NotFound(message) => (Code::NotFound, message.clone()),
            ServiceError::AlreadyExists(message) => (Code::AlreadyExists, message.clone()),
            ServiceError::FailedPrecondition(message) => (Code::FailedPrecondition, message.clone()),
            ServiceError::PermissionDenied(message) => (Code::PermissionDenied, message.clone()),
            ServiceError::Unauthenticated(message) => (Code::Unauthenticated, message.clone()),
            ServiceError::Unavailable(message) => (Code::Unavailable, message.clone()),
            ServiceError::DeadlineExceeded(message) => (Code::DeadlineExceeded, message.clone()),
            ServiceError::ResourceExhausted(message) => (Code::ResourceExhausted, message.clone()),
            ServiceError::Internal(detail) => {
                tracing::warn!(error = %detail, "internal error");
                return Status::internal("internal error; the server log has the details");
            }
        };
        match code {
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                tracing::warn!(%code, %message, "request failed")
            }
            _ => tracing::info!(%code, %message, "request refused"),
        }
        Status::new(code, message)
    }
}

impl From<Status> for ServiceError {
    /// A status from another Vigil service, as a domain error of ours. Its message is kept as it
    /// is: it was written for a person already (a NOT_FOUND reads `session "x" not found`, not
    /// wrapped a second time).
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => ServiceError::InvalidArgument(message),
            Code::NotFound => ServiceError::NotFound(message),
            Code::AlreadyExists => ServiceError::AlreadyExists(message),
            Code::FailedPrecondition | Code::Aborted => ServiceError::FailedPrecondition(message),
            Code::PermissionDenied => ServiceError::PermissionDenied(message),
            Code::Unauthenticated => ServiceError::Unauthenticated(message),
            Code::Unavailable | Code::Cancelled => ServiceError::Unavailable(message),
            Code::DeadlineExceeded => ServiceError::DeadlineExceeded(message),
            Code::ResourceExhausted => ServiceError::ResourceExhausted(message),
            Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
                ServiceError::Internal(format!("{}: {message}", status.code()))
            }
        }
    }
}

impl From<vigil_core::Invalid> for ServiceError {
    /// A value a shared check refused: the caller's mistake, with the check's message.
    fn from(invalid: vigil_core::Invalid) -> Self {
        ServiceError::InvalidArgument(invalid.0)
    }
}

impl From<DbErr> for ServiceError {
    /// Maps database errors by what the database reported (SQLSTATE classes via sea-orm's
    /// [`SqlErr`]) and by connection state, never by message text.
    fn from(error: DbErr) -> Self {
        if let Some(sql_error) = error.sql_err() {
            match sql_error {
                SqlErr::UniqueConstraintViolation(detail) => {
                    return ServiceError::AlreadyExists(format!("already exists: {detail}"));
                }
                SqlErr::ForeignKeyConstraintViolation(detail) => {
                    return ServiceError::FailedPrecondition(format!(
                        "refers to something that does not exist: {detail}"
                    ));
                }
                _ => {}
            }
        }
        match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => database_unavailable(&error),
            DbErr::Exec(RuntimeErr::SqlxError(sqlx_error)) | DbErr::Query(RuntimeErr::SqlxError(sqlx_error))
                if is_connection_error(sqlx_error.as_ref()) =>
            {
                database_unavailable(&error)
            }
            DbErr::RecordNotFound(what) => ServiceError::not_found("record", what.clone()),
            _ => ServiceError::Internal(format!("database error: {error}")),
        }
    }
}

/// What a caller is told when the database cannot serve a request: that it may retry, and nothing
/// of the driver's own words (pool sizes, timeouts, host names and addresses stay in the log).
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable right now; retry shortly";

/// What a caller is told when the control bus cannot carry a message; the details are logged.
pub const BUS_UNAVAILABLE: &str = "the control bus is unavailable right now; retry shortly";

fn database_unavailable(error: &DbErr) -> ServiceError {
    tracing::warn!(%error, "database unavailable");
    ServiceError::Unavailable(DATABASE_UNAVAILABLE.to_owned())
}

/// Whether an sqlx error means the database could not be reached (as opposed to a bad query).
fn is_connection_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let text = format!("{error:?}");
    // sqlx exposes these as enum variants; matching on the Debug name keeps us independent of the
    // exact sqlx version re-exported by sea-orm.
    ["Io(", "PoolTimedOut", "PoolClosed", "WorkerCrashed", "Tls("]
        .iter()
        .any(|variant| text.starts_with(variant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_maps_to_its_code() {
        let cases = [
            (
                ServiceError::invalid("page_size must not be negative"),
                Code::InvalidArgument,
            ),
            (ServiceError::not_found("session", "x"), Code::NotFound),
            (ServiceError::AlreadyExists("x".into()), Code::AlreadyExists),
            (ServiceError::FailedPrecondition("x".into()), Code::FailedPrecondition),
            (ServiceError::PermissionDenied("x".into()), Code::PermissionDenied),
            (ServiceError::Unauthenticated("x".into()), Code::Unauthenticated),
            (ServiceError::Unavailable("x".into()), Code::Unavailable),
            (ServiceError::DeadlineExceeded("x".into()), Code::DeadlineExceeded),
            (ServiceError::ResourceExhausted("x".into()), Code::ResourceExhausted),
            (ServiceError::internal("boom"), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn messages_reach_the_caller_but_internal_details_do_not() {
        let status = Status::from(ServiceError::invalid("client_ip \"300.1.1.1\" is not an IP address"));
        assert_eq!(status.message(), "client_ip \"300.1.1.1\" is not an IP address");
        let status = Status::from(ServiceError::not_found("session", "abc"));
        assert_eq!(status.message(), "session \"abc\" not found");
        let status = Status::from(ServiceError::internal("password=hunter2 in a stack trace"));
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn a_status_from_another_service_comes_back_as_the_same_error() {
        for error in [
            ServiceError::invalid("selector.user must not be empty"),
            ServiceError::not_found("session", "x"),
            ServiceError::AlreadyExists("x".into()),
            ServiceError::FailedPrecondition("x".into()),
            ServiceError::PermissionDenied("x".into()),
            ServiceError::Unauthenticated("x".into()),
            ServiceError::Unavailable("x".into()),
            ServiceError::DeadlineExceeded("x".into()),
            ServiceError::ResourceExhausted("x".into()),
        ] {
            let shown = error.to_string();
            let status = Status::from(error);
            let code = status.code();
            let back = ServiceError::from(status);
            assert_eq!(back.to_string(), shown, "{code:?}");
            // And forward again, as a service relaying it answers its own caller.
            assert_eq!(Status::from(back).code(), code);
        }
        assert_eq!(
            ServiceError::from(Status::not_found("session \"x\" not found")).to_string(),
            "session \"x\" not found"
        );
        assert!(matches!(
            ServiceError::from(Status::unknown("boom")),
            ServiceError::Internal(_)
        ));
    }

    #[test]
    fn a_refused_check_is_an_invalid_argument() {
        let error = ServiceError::from(vigil_core::Invalid("user must not be empty".into()));
        assert!(matches!(error, ServiceError::InvalidArgument(message) if message == "user must not be empty"));
    }

    #[test]
    fn the_driver_s_words_never_reach_the_caller() {
        // What sqlx says when the pool is exhausted: it names the pool, which is ours to know.
        let error: ServiceError = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout).into();
        let status = Status::from(error);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), DATABASE_UNAVAILABLE);
        assert!(
            !status.message().to_lowercase().contains("pool"),
            "{}",
            status.message()
        );
        let error: ServiceError =
            DbErr::Conn(RuntimeErr::Internal("connection refused to 10.0.0.7:5432".into())).into();
        assert_eq!(Status::from(error).message(), DATABASE_UNAVAILABLE);
        let error: ServiceError =
            crate::bus::BusError::Unavailable("Redis PUBLISH failed: io error 10.0.0.8".into()).into();
        assert_eq!(Status::from(error).message(), BUS_UNAVAILABLE);
    }

    #[test]
    fn database_record_not_found_is_not_found() {
        let error: ServiceError = DbErr::RecordNotFound("session 1".into()).into();
        assert!(matches!(error, ServiceError::NotFound(_)));
    }
}
