//! The gRPC edge: requests are validated into domain values, handed to the store and the
//! registry's tasks, and answered; errors leave as `ServiceError` and become `Status` in one place
//! (`vigil_runtime::error`).

mod hello_guard;
mod hello_limit;
mod link;

mod sessions;
mod watch_limits;

pub use hello_guard::{FAILURE_WINDOW, MAX_FAILED_HELLOS};
pub use hello_limit::{PRE_HELLO_LIMIT, PreHelloLimit, Verdict, first_message};
pub use link::LinkApi;
pub use sessions::SessionsApi;
