//! sea-orm entities: one row type per table, and the translation between rows and domain values.
//!
//! The schema itself is defined by the migrations (`store::migration`); these structs mirror it.

pub mod audit_event;
pub mod idle_warning;
pub mod lock;
pub mod lock_version;
pub mod policy;
pub mod policy_set_version;
pub mod slot;
