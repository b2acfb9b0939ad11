//! `rapport-bench`: starts the real mesh (redis-server + the four release
//! binaries found next to this executable) and a bare tonic echo server,
//! seeds agents and profiles, drives every scenario and its floor with the
//! same load generator in the same run, and writes `latest.json` and
//! `latest.md` (figures, floors, ratios, the machine) to `--out`.

mod breakdown;
mod floors;
mod load;
mod outreach;
mod plot;
mod report;
mod scenarios;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use rapportctl::mesh::{Mesh, MeshOptions};

use crate::load::{Mode, Op, Stats, Timing};
use crate::report::{Comparison, Machine, Report, ScalingPoint};

/// The gRPC calls one inbound cycle makes: RouteCall, AcceptOffer and
/// CompleteCall from the caller, and routing's LookupByPhone, Classify and
/// RecordContact. Each costs at least what one echo call costs (a client
/// and a server on this machine), so echo's saturated rate divided by this
/// is a ceiling on cycles per second that no work inside the services can
/// raise; the report sets the cycle rate beside it.
const RPCS_PER_CYCLE: u32 = 6;

/// The gRPC calls a RouteCall waits for one after another: its own,
/// LookupByPhone, then Classify (which needs the profile). Their sum at
/// echo's latency is a floor on RouteCall's p50 before any work.
const SERIAL_HOPS_PER_ROUTE: u32 = 3;

/// Parses "10", "10s", "500ms" or "2m".
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .map(|v| Duration::from_secs_f64(v * mult))
        .map_err(|e| format!("bad duration {s:?}: {e}"))
}

#[derive(Debug, Parser)]
#[command(about = "Benchmarks Rapport against floors measured in the same run")]
struct Args {
    /// Measured time per point ("10s", "500ms").
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up per point, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open-loop arrival rate (requests/s) for the fixed-rate points.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Most requests open at once in open-loop runs (arrivals beyond wait,
    /// and the wait counts in their latency).
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Requests in flight for the saturated points.
    #[arg(long, default_value_t = 32)]
    saturate: usize,
    /// Agents logged in for the scenarios (100..100000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    agents: u64,
    /// Agent counts of the scaling curve beyond --agents, comma-separated.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    scale: Vec<usize>,
    /// Profiles seeded, each with 20 contacts, twice: once as the route
    /// scenario's callers, once for the profile scenario to read.
    #[arg(long, default_value_t = 500)]
    profiles: usize,
    /// Scenarios to run.
    #[arg(
        long,
        default_value = "outreach,echo,route,profile,classify,million,redis,scaling",
        value_delimiter = ','
    )]
    scenarios: Vec<String>,
    /// Most RPCs each service runs at once (`--max-concurrent-requests`);
    /// beyond it a call is refused RESOURCE_EXHAUSTED at once. Sized for
    /// this machine, it is what turns the 2× saturation point's excess into
    /// fast refusals instead of a queue that makes every caller late.
    #[arg(long, default_value_t = 128)]
    server_concurrency: usize,
    /// Runtime threads of each service (`--worker-threads`). Five busy
    /// processes share this machine's cores, so one each is the default:
    /// a second worker mostly wakes up to find no work, at the price of a
    /// context switch on a core another process needed. In five interleaved
    /// pairs of `echo,route` runs, one worker cost 5-24 % less CPU per
    /// cycle and ran 4-25 % more saturated cycles than two.
    #[arg(long, default_value = "1")]
    service_worker_threads: std::num::NonZeroUsize,
    /// Customers (20 contacts each) generated and bulk-imported into the
    /// mesh's SQLite before it starts, for the `million` point.
    #[arg(long, default_value_t = 1_000_000)]
    million_profiles: u64,
    /// Agents logged in for the `million` point.
    #[arg(long, default_value_t = 10_000)]
    million_agents: usize,
    /// Open-loop arrival rate of the `million` point (contacts/s).
    #[arg(long, default_value_t = 1000.0)]
    million_rate: f64,
    /// Measured time of the `million` point.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    million_duration: Duration,
    /// No-op care tasks of the outreach scenario.
    #[arg(long, default_value_t = 200_000)]
    outreach_tasks: usize,
    /// Scheduler replicas claiming them.
    #[arg(long, default_value_t = 2)]
    outreach_workers: usize,
    /// Where latest.json and latest.md go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Where the mesh's logs and SQLite file go (a temp dir by default).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "[rapport-bench] {msg}");
}

struct Suite {
    timing: Timing,
    points: Vec<Stats>,
}

impl Suite {
    async fn point(&mut self, name: &str, op: Arc<dyn Op>, mode: Mode) -> Stats {
        let stats = load::run(name, op, mode, self.timing).await;
        say(&format!(
            "{name:<28} {:>10.0} rps  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {:?}",
            stats.rps,
            stats.p50_us as f64 / 1000.0,
            stats.p99_us as f64 / 1000.0,
            stats.errors
        ));
        self.points.push(stats.clone());
        stats
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let machine = Machine::detect();
    let want = |s: &str| args.scenarios.iter().any(|x| x == s);
    let agents = args.agents as usize;
    let (one, sat) = (
        Mode::Closed { in_flight: 1 },
        Mode::Closed {
            in_flight: args.saturate,
        },
    );
    let open = Mode::Open {
        rate: args.rate,
        max_in_flight: args.max_in_flight,
    };
    let mut suite = Suite {
        timing: Timing {
            warmup: args.warmup,
            duration: args.duration,
        },
        points: Vec::new(),
    };
    let mut comparisons = Vec::new();
    let mut notes = Vec::new();

    // Outreach first and on its own: it needs only a private Redis, and
    // nothing else runs meanwhile.
    if want("outreach") {
        say(&format!(
            "outreach: {} no-op care tasks, {} replicas",
            args.outreach_tasks, args.outreach_workers
        ));
        let f = outreach::claim_and_ack(args.outreach_tasks, args.outreach_workers).await?;
        say(&format!(
            "outreach: {:.0} tasks/s claimed + dispatched + acked; list queue floor {:.0}/s",
            f.claimed_dispatched_acked_per_s, f.floor_list_queue_push_pop_per_s
        ));
        comparisons.push(Comparison::new(
            &format!(
                "Outreach no-op care tasks/s claimed + dispatched + acked ({} replicas)",
                f.workers
            ),
            f.claimed_dispatched_acked_per_s,
            "bare Redis list queue push+pop /s",
            f.floor_list_queue_push_pop_per_s,
            "/s",
            "≥ 25,000 /s",
        ));
        notes.push(format!(
            "outreach: {} tasks indexed at {:.0}/s, then all dispatched exactly once and acknowledged in {:.1} s",
            f.tasks, f.index_writes_per_s, f.seconds
        ));
    }
    if args.scenarios.iter().all(|s| s == "outreach") {
        let report = Report {
            machine,
            settings: settings(&args, 0),
            comparisons,
            points: Vec::new(),
            scaling: Vec::new(),
            redis: Vec::new(),
            route_hops: Vec::new(),
            cycle_cpu: Vec::new(),
            route_books: scenarios::RouteBooks::default(),
            notes,
        };
        return write_report(&args, &report);
    }

    // The floor: a bare tonic server.
    let echo_addr = floors::start_echo_server()?;
    let echo = floors::echo_op(echo_addr).await?;
    let echo1 = suite.point("echo (bare tonic)", echo.clone(), one).await;
    let echo_sat = suite.point("echo (bare tonic)", echo.clone(), sat).await;
    let echo_open = suite.point("echo (bare tonic)", echo.clone(), open).await;

    // The million customers go into the profile database before the mesh
    // starts, through the bulk importer (the CRM path would take hours).
    let scratch = tempfile::tempdir().context("failed to create the bench temp dir")?;
    let workdir = args
        .workdir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let million = want("million") && args.million_profiles > 0;
    if million {
        let f = seed_million(&workdir, args.million_profiles).await?;
        notes.push(f);
        say(notes.last().map_or("", String::as_str));
    }

    say("starting the mesh");
    let mut mesh = Mesh::start(MeshOptions {
        routing_replicas: 1,
        workdir: Some(workdir.clone()),
        env: vec![
            ("RUST_LOG".into(), "warn".into()),
            // Outreach stays idle: following the change feed, it would plan
            // care for every imported customer and dial it through routing,
            // taking agents and profile reads from the inbound points. The
            // outreach scenario measures it on its own.
            ("RAPPORT_FOLLOW_FEED".into(), "false".into()),
            (
                "RAPPORT_MAX_CONCURRENT_REQUESTS".into(),
                args.server_concurrency.to_string(),
            ),
            (
                "RAPPORT_WORKER_THREADS".into(),
                args.service_worker_threads.to_string(),
            ),
        ],
    })
    .await
    .context("failed to start the mesh (run `cargo build --release --workspace --bins` first)")?;
    let routing = mesh.routing_client(0).await?;
    let mut profile = mesh.profile_client().await?;
    let classification = mesh.classification_client().await?;

    let t = Instant::now();
    scenarios::login_agents(&routing, 0, agents, 64).await?;
    notes.push(format!(
        "{agents} agents logged in in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let t = Instant::now();
    let profiles = args.profiles.max(1);
    // Two sets of customers: the route scenario's callers (0..profiles) and
    // the profile scenario's (profiles..2·profiles). Every completed cycle
    // records a contact for its caller, so by the time the profile points
    // run a caller has hundreds of contacts, not the 20 the figures are
    // about, and a point read's history summary scans them all: in two
    // runs on one host, GetProfile's p50 was 0.40 ms after the route
    // points and 0.28 ms in a profile-only run. The callers' profiles are
    // read once as a point of their own.
    scenarios::seed_profiles(&profile, 0..2 * profiles, 64).await?;
    notes.push(format!(
        "2 × {profiles} profiles × 20 contacts seeded in {:.1} s ({:.0} profiles/s): the route scenario's callers and the profile scenario's readers",
        t.elapsed().as_secs_f64(),
        (2 * profiles) as f64 / t.elapsed().as_secs_f64()
    ));
    say(notes.last().map_or("", String::as_str));

    let route = scenarios::RouteOp::new(routing.clone(), "bench", profiles);
    let mut route_hops = Vec::new();
    if want("route") {
        let before = breakdown::snapshot(&mesh).await?;
        let r1 = suite
            .point(&format!("RouteCall ({agents} agents)"), route.clone(), one)
            .await;
        route_hops = breakdown::route_hops(&before, &breakdown::snapshot(&mesh).await?);
        for h in &route_hops {
            say(&format!(
                "  {:<52} {:>5.2} per RouteCall  mean {:>7.3} ms",
                h.what, h.per_call, h.mean_ms
            ));
        }
        comparisons.push(Comparison::new(
            "RouteCall p50, 1 in flight",
            r1.p50_us as f64 / 1000.0,
            "echo p50, 1 in flight",
            echo1.p50_us as f64 / 1000.0,
            "ms",
            "≤ 4",
        ));
        comparisons.push(Comparison::new(
            "RouteCall p50, 1 in flight",
            r1.p50_us as f64 / 1000.0,
            &format!(
                "{SERIAL_HOPS_PER_ROUTE} × echo p50 (the gRPC calls a RouteCall makes one after another)"
            ),
            SERIAL_HOPS_PER_ROUTE as f64 * echo1.p50_us as f64 / 1000.0,
            "ms",
            &format!(
                "≤ {:.2} (4 × echo)",
                4.0 / SERIAL_HOPS_PER_ROUTE as f64
            ),
        ));
    }
    let mut cycle_cpu = Vec::new();
    if want("route") {
        let before = breakdown::snapshot(&mesh).await?;
        let rs = suite
            .point(
                &format!("RouteCall cycle ({agents} agents)"),
                route.clone(),
                sat,
            )
            .await;
        cycle_cpu = breakdown::cpu_per_route(&before, &breakdown::snapshot(&mesh).await?);
        for h in &cycle_cpu {
            say(&format!(
                "  CPU per cycle: {:<40} {:>7.3} ms",
                h.what, h.mean_ms
            ));
        }
        comparisons.push(Comparison::new(
            "RouteCall cycles/s saturated (RouteCall+AcceptOffer+CompleteCall)",
            rs.rps,
            "echo rps saturated",
            echo_sat.rps,
            "rps",
            "≥ 0.25",
        ));
        comparisons.push(Comparison::new(
            "RouteCall cycles/s saturated",
            rs.rps,
            &format!(
                "echo rps saturated ÷ {RPCS_PER_CYCLE} (the gRPC calls a cycle makes, at echo's cost each)"
            ),
            echo_sat.rps / RPCS_PER_CYCLE as f64,
            "rps",
            &format!(
                "≥ {:.2}: 0.25 of echo is above this ceiling",
                0.25 * RPCS_PER_CYCLE as f64
            ),
        ));
        // Twice the saturated rate, open loop: what still gets through
        // (goodput), and how fast the excess is refused.
        let over = suite
            .point(
                &format!("RouteCall cycle at 2× saturation ({agents} agents)"),
                route.clone(),
                Mode::Open {
                    rate: (2.0 * rs.rps).max(1.0),
                    max_in_flight: args.max_in_flight,
                },
            )
            .await;
        comparisons.push(Comparison::new(
            &format!(
                "RouteCall goodput at 2× saturation ({:.0}/s offered; refused in p99 {:.2} ms)",
                2.0 * rs.rps,
                over.error_p99_us as f64 / 1000.0
            ),
            over.rps,
            "RouteCall cycles/s saturated",
            rs.rps,
            "rps",
            "≥ 0.9",
        ));
        let ro = suite
            .point(&format!("RouteCall ({agents} agents)"), route.clone(), open)
            .await;
        comparisons.push(Comparison::new(
            &format!("RouteCall p99 open loop {:.0}/s", args.rate),
            ro.p99_us as f64 / 1000.0,
            &format!("echo p99 open loop {:.0}/s", args.rate),
            echo_open.p99_us as f64 / 1000.0,
            "ms",
            "RouteCall p99 ≤ 10 ms",
        ));
    }
    if want("profile") {
        let mut fresh_p50 = None;
        for (name, by_phone) in [("GetProfile", false), ("LookupByPhone", true)] {
            let op: Arc<dyn Op> = Arc::new(scenarios::ProfileOp {
                client: profile.clone(),
                first: profiles,
                customers: profiles,
                by_phone,
            });
            let p1 = suite
                .point(&format!("{name} ({profiles} profiles)"), op.clone(), one)
                .await;
            let ps = suite
                .point(&format!("{name} ({profiles} profiles)"), op.clone(), sat)
                .await;
            comparisons.push(Comparison::new(
                &format!("{name} p50, 1 in flight"),
                p1.p50_us as f64 / 1000.0,
                "echo p50, 1 in flight",
                echo1.p50_us as f64 / 1000.0,
                "ms",
                "",
            ));
            comparisons.push(Comparison::new(
                &format!("{name} rps saturated"),
                ps.rps,
                "echo rps saturated",
                echo_sat.rps,
                "rps",
                "",
            ));
            if !by_phone {
                let po = suite
                    .point(&format!("{name} ({profiles} profiles)"), op.clone(), open)
                    .await;
                comparisons.push(Comparison::new(
                    &format!("{name} p99 open loop {:.0}/s", args.rate),
                    po.p99_us as f64 / 1000.0,
                    &format!("echo p99 open loop {:.0}/s", args.rate),
                    echo_open.p99_us as f64 / 1000.0,
                    "ms",
                    "GetProfile p99 ≤ 2 ms",
                ));
                fresh_p50 = Some(p1.p50_us as f64 / 1000.0);
            }
        }
        // The same read of the route scenario's callers, whose histories
        // the completed cycles have grown: what a long history costs.
        if let (true, Some(fresh)) = (want("route"), fresh_p50) {
            let recorded = route.books().completed as f64 / profiles as f64;
            let op: Arc<dyn Op> = Arc::new(scenarios::ProfileOp {
                client: profile.clone(),
                first: 0,
                customers: profiles,
                by_phone: false,
            });
            let name = format!(
                "GetProfile (the route scenario's {profiles} callers, 20 + {recorded:.0} contacts each)"
            );
            let pc = suite.point(&name, op, one).await;
            comparisons.push(Comparison::new(
                &format!("GetProfile p50, 1 in flight, callers with 20 + {recorded:.0} contacts"),
                pc.p50_us as f64 / 1000.0,
                "GetProfile p50, 1 in flight, 20 contacts",
                fresh,
                "ms",
                "",
            ));
        }
    }
    if want("classify") {
        let op: Arc<dyn Op> =
            scenarios::ClassifyOp::new(classification.clone(), &mut profile).await?;
        let c1 = suite
            .point("Classify (500 chars, 20 contacts)", op.clone(), one)
            .await;
        let cs = suite
            .point("Classify (500 chars, 20 contacts)", op.clone(), sat)
            .await;
        comparisons.push(Comparison::new(
            "Classify p50, 1 in flight",
            c1.p50_us as f64 / 1000.0,
            "echo p50, 1 in flight",
            echo1.p50_us as f64 / 1000.0,
            "ms",
            "",
        ));
        comparisons.push(Comparison::new(
            "Classify rps saturated",
            cs.rps,
            "echo rps saturated",
            echo_sat.rps,
            "rps",
            "",
        ));
    }

    let mut logged = agents;
    let mut million_books = None;
    let mut million_done = !million;
    // The million point, run once where the curve reaches its agent count.
    macro_rules! million_point {
        () => {
            if !million_done {
                million_done = true;
                let target = args.million_agents.max(logged);
                let from = logged;
                let t = Instant::now();
                scenarios::login_agents(&routing, from, target, 64).await?;
                logged = target;
                notes.push(format!(
                    "agents {from} → {target} logged in in {:.1} s for the million point",
                    t.elapsed().as_secs_f64()
                ));
                let mode = Mode::Open {
                    rate: args.million_rate,
                    max_in_flight: args.max_in_flight,
                };
                let echo_at = suite.point("echo (bare tonic)", echo.clone(), mode).await;
                let op = scenarios::RouteOp::with_callers(
                    routing.clone(),
                    "million",
                    args.million_profiles as usize,
                    0,
                );
                let saved = suite.timing;
                suite.timing.duration = args.million_duration;
                let big = suite
                    .point(
                        &format!(
                            "RouteCall ({target} agents, {} profiles)",
                            args.million_profiles
                        ),
                        op.clone(),
                        mode,
                    )
                    .await;
                suite.timing = saved;
                comparisons.push(Comparison::new(
                    &format!(
                        "RouteCall p99 open loop {:.0}/s for {:.0} s, {target} agents, {} profiles",
                        args.million_rate,
                        args.million_duration.as_secs_f64(),
                        args.million_profiles
                    ),
                    big.p99_us as f64 / 1000.0,
                    &format!("echo p99 open loop {:.0}/s", args.million_rate),
                    echo_at.p99_us as f64 / 1000.0,
                    "ms",
                    "RouteCall p99 ≤ 10 ms",
                ));
                // The mesh's capacity in the same configuration, closed loop
                // after the open-loop point: whether the offered rate was
                // within it is what the p99 above means.
                let capacity = suite
                    .point(
                        &format!(
                            "RouteCall cycle ({target} agents, {} profiles)",
                            args.million_profiles
                        ),
                        op.clone(),
                        Mode::Closed {
                            in_flight: args.saturate,
                        },
                    )
                    .await;
                comparisons.push(Comparison::new(
                    &format!(
                        "RouteCall cycles/s saturated, {target} agents, {} profiles",
                        args.million_profiles
                    ),
                    capacity.rps,
                    "the million point's offered rate",
                    args.million_rate,
                    "rps",
                    "≥ 1: the offered rate is within capacity",
                ));
                million_books = Some(op.books());
            }
        };
    }

    let mut redis = Vec::new();
    if want("redis") {
        if rapportctl_which("redis-benchmark") {
            let port = mesh.redis.port();
            let n = |rps_guess: f64| ((rps_guess * args.duration.as_secs_f64()) as u32).max(1000);
            let sha = floors::load_reserve_like(port)
                .map_err(|e| notes.push(format!("EVALSHA floor skipped: {e:#}")))
                .ok();
            let mut runs: Vec<(&str, u32, u32, Vec<&str>)> = vec![
                ("SET", 1, n(10_000.0), vec!["-t", "set"]),
                ("SET", args.saturate as u32, n(50_000.0), vec!["-t", "set"]),
            ];
            if let Some(sha) = sha.as_deref() {
                runs.push((
                    "EVALSHA (ZREVRANGE + HINCRBY)",
                    args.saturate as u32,
                    n(30_000.0),
                    vec!["EVALSHA", sha, "2", "bench:idle", "bench:agent"],
                ));
            }
            for (name, clients, requests, extra) in runs {
                match floors::redis_benchmark(port, name, clients, requests, &extra) {
                    Ok(fig) => {
                        say(&format!(
                            "redis-benchmark {name} -c {clients}: {:.0} rps",
                            fig.rps
                        ));
                        redis.push(fig);
                    }
                    Err(e) => notes.push(format!("redis-benchmark {name}: {e:#}")),
                }
            }
            if let Some(p50) = redis.first().and_then(|set1| set1.p50_ms) {
                comparisons.push(Comparison::new(
                    "echo p50, 1 in flight (gRPC floor)",
                    echo1.p50_us as f64 / 1000.0,
                    "redis SET p50, 1 client",
                    p50,
                    "ms",
                    "",
                ));
            }
            if let (Some(rs), Some(set)) = (
                suite
                    .points
                    .iter()
                    .find(|p| p.name.starts_with("RouteCall cycle")),
                redis.get(1),
            ) {
                comparisons.push(Comparison::new(
                    "RouteCall cycles/s saturated",
                    rs.rps,
                    "redis SET rps saturated",
                    set.rps,
                    "rps",
                    "",
                ));
            }
        } else {
            notes.push("redis-benchmark not on PATH: no Redis floor".into());
        }
    }

    let mut scaling = Vec::new();
    if want("scaling") {
        // The curve's first point is measured here, not taken from the
        // route points: by now every seeded caller has a much longer
        // history (each cycle records a contact), and a curve whose points
        // straddle that would show history growth as agent cost.
        let base = suite
            .point(
                &format!("RouteCall ({agents} agents, curve start)"),
                route.clone(),
                one,
            )
            .await;
        scaling.push(ScalingPoint {
            agents,
            p50_us: base.p50_us,
            p99_us: base.p99_us,
            rps: base.rps,
        });
        for &target in args.scale.iter().filter(|&&n| n > agents && n <= 100_000) {
            if target > args.million_agents {
                million_point!();
            }
            let t = Instant::now();
            if target > logged {
                scenarios::login_agents(&routing, logged, target, 64).await?;
                logged = target;
            }
            notes.push(format!(
                "agents {} → {target} logged in in {:.1} s",
                scaling.last().map_or(agents, |s| s.agents),
                t.elapsed().as_secs_f64()
            ));
            say(notes.last().map_or("", String::as_str));
            let s = suite
                .point(&format!("RouteCall ({target} agents)"), route.clone(), one)
                .await;
            scaling.push(ScalingPoint {
                agents: target,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
                rps: s.rps,
            });
        }
        if let (Some(base), Some(last)) = (scaling.first().map(|s| s.p50_us), scaling.last())
            && scaling.len() > 1
        {
            comparisons.push(Comparison::new(
                &format!("RouteCall p50 at {} agents", last.agents),
                last.p50_us as f64 / 1000.0,
                &format!("RouteCall p50 at {agents} agents"),
                base as f64 / 1000.0,
                "ms",
                "≤ 1.25",
            ));
        }
    }

    // Between 10,000 and 100,000 agents on the curve (or after it), with
    // --million-agents logged in: the curve's points use the seeded
    // callers, whose histories the million point does not touch.
    million_point!();
    // Read once more so the last expansion's bookkeeping is not "unused".
    let _ = (million_done, logged);

    mesh.shutdown(Duration::from_secs(5));
    let mut books = route.books();
    if let Some(b) = &million_books {
        books.add(b);
    }
    notes.push(format!(
        "each service ran {} runtime worker thread(s) (`--service-worker-threads`); \
         the echo floor's server runs 2, tokio's default on this machine",
        args.service_worker_threads
    ));
    notes.push(format!(
        "suite took {:.0} s; durations {:?} measured + {:?} warm-up per point",
        started.elapsed().as_secs_f64(),
        args.duration,
        args.warmup
    ));
    let report = Report {
        machine,
        settings: settings(&args, profiles),
        comparisons,
        points: suite.points,
        scaling,
        redis,
        route_hops,
        cycle_cpu,
        route_books: books,
        notes,
    };
    write_report(&args, &report)?;
    if report.route_books.double_assignments > 0 || report.route_books.lost > 0 {
        anyhow::bail!(
            "correctness: {} double assignments, {} lost contacts",
            report.route_books.double_assignments,
            report.route_books.lost
        );
    }
    Ok(())
}

fn settings(args: &Args, profiles: usize) -> serde_json::Value {
    serde_json::json!({
        "duration_s": args.duration.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "rate": args.rate,
        "max_in_flight": args.max_in_flight,
        "saturate": args.saturate,
        "agents": args.agents,
        "scale": args.scale,
        "profiles": profiles,
        "million_profiles": args.million_profiles,
        "million_agents": args.million_agents,
        "million_rate": args.million_rate,
        "million_duration_s": args.million_duration.as_secs_f64(),
        "outreach_tasks": args.outreach_tasks,
        "server_concurrency": args.server_concurrency,
        "service_worker_threads": args.service_worker_threads,
        "outreach_workers": args.outreach_workers,
        "route_callers": "seeded customers by phone (full personalized path: lookup + classify + reserve)",
        "scenarios": args.scenarios,
    })
}

fn write_report(args: &Args, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let md = report.markdown();
    std::fs::write(
        args.out.join("latest.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(args.out.join("latest.md"), &md)?;
    let _ = writeln!(std::io::stdout(), "{md}");
    say(&format!("wrote {}/latest.{{json,md}}", args.out.display()));
    // A plot that cannot be drawn must not fail a run whose report is
    // already written.
    match plot::write_plots(report, &args.out) {
        Ok(paths) => {
            for p in paths {
                say(&format!("wrote {}", p.display()));
            }
        }
        Err(e) => say(&format!("plots not written: {e:#}")),
    }
    Ok(())
}

/// Generates `customers` customers with 20 contacts each and bulk-imports
/// them into `dir/profile.db` (where the mesh's profile service opens its
/// database), then deletes the input. Returns a note with the timings.
async fn seed_million(dir: &std::path::Path, customers: u64) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let file = dir.join("million.jsonl");
    say(&format!("generating {customers} customers × 20 contacts"));
    let t = Instant::now();
    rapportctl::import::generate(&file, customers, 20, 0)?;
    let generated = t.elapsed().as_secs_f64();
    say("importing them into the mesh's SQLite");
    let t = Instant::now();
    let import = rapportctl::import::Args {
        file: file.clone(),
        database_url: format!("sqlite://{}", dir.join("profile.db").display()),
        format: None,
        batch: 500,
        on_error: rapportctl::import::OnError::Abort,
        checkpoint: Some(dir.join("million.checkpoint")),
        default_region: rapport_kit::phone::Region::CN,
        generate: None,
        contacts: 20,
        bad_every: 0,
    };
    let report = rapportctl::import::import(&import, false).await?;
    let imported = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(dir.join("million.checkpoint"));
    anyhow::ensure!(
        report.customers == customers && report.rejected.is_empty(),
        "imported {} of {customers} customers ({} rejected)",
        report.customers,
        report.rejected.len()
    );
    Ok(format!(
        "{customers} profiles × 20 contacts generated in {generated:.1} s and bulk-imported into SQLite in {imported:.1} s"
    ))
}

fn rapportctl_which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_or_without_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
    }
}
