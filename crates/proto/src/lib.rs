//! The gRPC contracts of the Rapport mesh, generated from `proto/rapport/v1`.
//!
//! Every service and client in the workspace uses these types; nothing else
//! defines wire types.

#![allow(clippy::all, rust_2018_idioms, missing_docs)]

/// Package `rapport.v1`.
pub mod v1 {
    tonic::include_proto!("rapport.v1");
}

/// Encoded `FileDescriptorSet` of package `rapport.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));

pub use v1::*;
