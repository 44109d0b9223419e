//! sea-orm entities: one row type per table, and the translation between rows and domain values.
//!
//! The schema itself is defined by the migrations (`store::migration`); these structs mirror it.

pub mod command;
pub mod termination;

use vigil_runtime::{ServiceError, ServiceResult};

/// The column value of a proto enum. Proto enum numbers here are all small, so the fallback is
/// unreachable; it exists only to avoid a panic path.
pub fn enum_code(value: impl Into<i32>) -> i16 {
    i16::try_from(value.into()).unwrap_or(i16::MAX)
}

/// The proto enum stored as `code` in `table.column`; fails only on values no version of this
/// code writes.
fn decode_enum<E: TryFrom<i32>>(code: i16, table: &str, column: &str) -> ServiceResult<E> {
    E::try_from(i32::from(code))
        .map_err(|_| ServiceError::internal(format!("{table}.{column} holds unknown value {code}")))
}
