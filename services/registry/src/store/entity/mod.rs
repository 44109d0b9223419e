//! sea-orm entities: one row type per table, and the translation between rows and domain values.
//!
//! The schema itself is defined by the migrations (`store::migration`); these structs mirror it.

pub mod gateway;
pub mod session;
pub mod session_activity;
