//! Test harness shared by the integration and end-to-end suites.
//!
//! Tests never touch anything they did not start: [`redis::TestRedis`] and
//! [`postgres::TestPostgres`] spawn private servers on free ports in
//! temporary directories (or use `TEST_REDIS_URL` / `TEST_POSTGRES_URL` when
//! set, isolating each test by key prefix or database), and
//! [`process::Child`] runs the real service binaries, killing them on drop.
//! [`proptest`] is re-exported, so every crate that has the testkit as a
//! dev-dependency can write property tests with the workspace's version.

pub mod postgres;
pub mod process;
pub mod redis;

pub use proptest;

use std::net::TcpListener;

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("failed to find a free port")
}

/// A short unique suffix for names (databases, centers, key prefixes).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}
