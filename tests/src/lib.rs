//! End-to-end tests of the Rapport mesh live in `tests/`; they start the
//! real binaries through [`rapportctl::mesh`].
