//! GetProfile / LookupByPhone latency at scale: a benchmark, not a test.
//! Ignored by default; run against a database filled by
//! `rapportctl import --generate N FILE` + `rapportctl import FILE`:
//!
//! ```sh
//! PROFILE_BENCH_DB=sqlite:///tmp/bench.db PROFILE_BENCH_CUSTOMERS=100000 \
//!   cargo test -p rapport-profile --release --test bench_lookup -- --ignored --nocapture
//! ```
//!
//! It prints percentiles and asserts nothing about time.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use chrono::Utc;
use rapport_kit::phone::{self, Region};
use rapport_profile::store::{Backend, PoolOptions, Store as _};

#[tokio::test]
#[ignore = "benchmark: needs PROFILE_BENCH_DB"]
async fn lookup_latency() {
    let Ok(url) = std::env::var("PROFILE_BENCH_DB") else {
        println!("PROFILE_BENCH_DB not set; nothing to measure");
        return;
    };
    let customers: u64 = std::env::var("PROFILE_BENCH_CUSTOMERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let store = Backend::connect(&url, PoolOptions::default())
        .await
        .expect("opens");
    let now = Utc::now();
    for (label, by_phone) in [("GetProfile", false), ("LookupByPhone", true)] {
        let mut micros = Vec::with_capacity(20_000);
        // A fixed stride walks ids spread over the whole table.
        let mut i: u64 = 12_345;
        for _ in 0..20_000 {
            i = (i + 7_919) % customers;
            let started = Instant::now();
            let profile = if by_phone {
                let number = phone::normalize(&format!("+86139{i:08}"), Region::CN)
                    .expect("generated numbers are valid");
                store.lookup_by_phone(&number, now).await
            } else {
                store.get_profile(&format!("C{i:09}"), now).await
            };
            micros.push(started.elapsed().as_micros());
            // Every 10th generated customer may be missing (bad rows).
            let _ = profile;
        }
        micros.sort_unstable();
        let at = |q: f64| micros[((micros.len() as f64 - 1.0) * q) as usize];
        println!(
            "{label}: n={} p50={}µs p90={}µs p99={}µs max={}µs",
            micros.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
    }
    store.close().await;
}
