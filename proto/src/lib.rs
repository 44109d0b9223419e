//! Vigil's gRPC contract, generated from `proto/vigil/v1` at build time.
//!
//! Everything lives in [`v1`]; [`FILE_DESCRIPTOR_SET`] is what server reflection serves.

/// Package `vigil.v1`: messages, enums, clients (`*_client`) and servers (`*_server`).
#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("vigil.v1");
}

/// The encoded `FileDescriptorSet` of every Vigil proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vigil_descriptor.bin"));

mod convert;
pub use convert::*;
