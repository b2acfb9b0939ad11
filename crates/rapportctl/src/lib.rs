//! Operator tooling for Rapport: the local mesh launcher, the reference
//! scenario, the demo that plays it through the real gRPC API, and the
//! bulk importer (also used by the benchmark to load a million customers).

pub mod demo;
pub mod import;
pub mod mesh;
pub mod scenario;
