//! Profile store benchmark: point reads (GetProfile, LookupByPhone) and the
//! batched export, each beside a floor measured in the same run on the
//! same pool (`SELECT 1`: acquiring a connection plus one round trip to
//! the database).
//!
//! Numbers come from here (and `make bench`), never from tests. Fill a
//! database first with the importer, whose own output is the import
//! figure:
//!
//! ```sh
//! cargo build --release -p rapportctl -p rapport-profile --examples
//! target/release/rapportctl import --generate 1000000 /tmp/p.jsonl
//! time target/release/rapportctl import /tmp/p.jsonl --database-url sqlite:///tmp/p.db
//! target/release/examples/profile-bench --database-url sqlite:///tmp/p.db --customers 1000000
//! ```
//!
//! Reads are measured closed loop (one at a time) and open loop (request
//! *i* due at t0 + i/rate, latency counted from the due time, so a stall
//! shows in every request it delays).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::Parser as _;
use rapport_kit::phone::{self, Region};
use rapport_profile::store::{Backend, PoolOptions, Store as _};

#[derive(clap::Parser)]
struct Args {
    #[arg(long)]
    database_url: String,
    /// Customers in the database (ids C000000000.., as the importer's
    /// generator writes them).
    #[arg(long)]
    customers: u64,
    /// Reads per closed-loop measurement.
    #[arg(long, default_value_t = 20_000)]
    reads: u64,
    /// Open-loop rate, requests per second.
    #[arg(long, default_value_t = 300)]
    rate: u64,
    /// Open-loop duration, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Profiles per export batch (0: skip the export).
    #[arg(long, default_value_t = 500)]
    export_batch: u32,
    /// Stop the export after this many profiles (0: all).
    #[arg(long, default_value_t = 0)]
    export_limit: u64,
}

#[derive(Clone, Copy)]
enum Op {
    Floor,
    GetProfile,
    LookupByPhone,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor SELECT 1",
            Self::GetProfile => "GetProfile",
            Self::LookupByPhone => "LookupByPhone",
        }
    }
}

/// The i-th customer of a walk spread over the whole id range.
fn customer(i: u64, customers: u64) -> u64 {
    (12_345 + i * 7_919) % customers
}

async fn once(store: &Backend, op: Op, i: u64) -> anyhow::Result<()> {
    let now = Utc::now();
    // Every 10th generated customer may be missing (generated bad rows):
    // NOT_FOUND costs the same lookup and counts too.
    match op {
        Op::Floor => store.ping().await?,
        Op::GetProfile => {
            let _ = store.get_profile(&format!("C{i:09}"), now).await;
        }
        Op::LookupByPhone => {
            let number = phone::normalize(&format!("+86139{i:08}"), Region::CN)
                .context("generated numbers are valid")?;
            let _ = store.lookup_by_phone(&number, now).await;
        }
    }
    Ok(())
}

struct Summary {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn summarize(mut micros: Vec<u64>) -> Summary {
    micros.sort_unstable();
    let at = |q: f64| {
        let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
        micros.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    Summary {
        n: micros.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn print(label: &str, op: Op, s: &Summary) {
    println!(
        "| {label} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
        op.name(),
        s.n,
        s.p50,
        s.p90,
        s.p99,
        s.max
    );
}

async fn closed_loop(store: &Backend, op: Op, args: &Args) -> anyhow::Result<Summary> {
    let mut micros = Vec::with_capacity(args.reads as usize);
    for i in 0..args.reads {
        let id = customer(i, args.customers);
        let started = Instant::now();
        once(store, op, id).await?;
        micros.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(summarize(micros))
}

async fn open_loop(store: &Backend, op: Op, args: &Args) -> anyhow::Result<Summary> {
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs(1).as_secs_f64() / args.rate as f64;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = tokio::runtime::Handle::current();
    let store = store.clone();
    let customers = args.customers;
    // The schedule runs on its own OS thread with std's sleep (tens of
    // microseconds of slack): tokio's timer has a 1 ms granularity, which
    // would show up as latency of every request.
    let pacer = std::thread::spawn(move || {
        let t0 = Instant::now();
        for i in 0..total {
            let due = t0 + Duration::from_secs_f64(interval * i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let store = store.clone();
            let done = done_tx.clone();
            runtime.spawn(async move {
                let result = once(&store, op, customer(i, customers)).await;
                // From the due time, not the start: no coordinated omission.
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = done.send(result.map(|()| micros));
            });
        }
    });
    let mut micros = Vec::with_capacity(total as usize);
    for _ in 0..total {
        match done_rx.recv().await {
            Some(result) => micros.push(result?),
            None => break,
        }
    }
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    Ok(summarize(micros))
}

async fn export(store: &Backend, args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut profiles = 0_u64;
    let mut contacts = 0_u64;
    loop {
        let page = store
            .export_profiles(after.as_deref(), args.export_batch, Utc::now())
            .await?;
        profiles += page.len() as u64;
        contacts += page
            .iter()
            .map(|p| p.summary.recent_contacts.len() as u64)
            .sum::<u64>();
        after = page.last().map(|p| p.customer.customer_id.clone());
        if page.len() < args.export_batch as usize
            || (args.export_limit > 0 && profiles >= args.export_limit)
        {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nExport (store, batch {}): {profiles} profiles ({contacts} recent contacts) in \
         {secs:.1} s = {:.0} profiles/s",
        args.export_batch,
        profiles as f64 / secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rapport_kit::phone::warm_up();
    let store = Backend::connect(&args.database_url, PoolOptions::default())
        .await
        .context("failed to open the database")?;
    // Warm the caches the way a running service's would be.
    for i in 0..2_000 {
        once(&store, Op::GetProfile, customer(i, args.customers)).await?;
    }
    println!("| loop | operation | n | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for op in [Op::Floor, Op::GetProfile, Op::LookupByPhone] {
        let s = closed_loop(&store, op, &args).await?;
        print("closed", op, &s);
    }
    for op in [Op::Floor, Op::GetProfile] {
        let s = open_loop(&store, op, &args).await?;
        print(&format!("open {}/s", args.rate), op, &s);
    }
    if args.export_batch > 0 {
        export(&store, &args).await?;
    }
    store.close().await;
    Ok(())
}
