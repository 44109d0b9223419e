//! The gRPC edge: requests are validated into domain values, handed to the store and the
//! registry's tasks, and answered; errors leave as `ServiceError` and become `Status` in one place
//! (`vigil_runtime::error`).

mod link;

mod sessions;

pub use link::LinkApi;
pub use sessions::SessionsApi;
