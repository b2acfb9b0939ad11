//! The harness itself works: private servers start, answer and stop.

use rapport_testkit::{postgres::TestPostgres, redis::TestRedis};

#[test]
fn private_redis_starts_and_stops() {
    let redis = TestRedis::start().expect("redis starts");
    assert!(redis.url().starts_with("redis://"));
}

#[test]
fn private_postgres_starts_and_accepts_queries() {
    let pg = TestPostgres::start().expect("postgres starts");
    let out = std::process::Command::new("psql")
        .arg(pg.url())
        .args(["-tAc", "select 40 + 2"])
        .output()
        .expect("psql runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{out:?}");
}
