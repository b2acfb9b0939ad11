//! Operator tooling for Rapport: the local mesh launcher, the reference
//! scenario, and the demo that plays it through the real gRPC API.

pub mod demo;
pub mod mesh;
pub mod scenario;
