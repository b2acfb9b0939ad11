//! Where a RouteCall's time goes: the mean time of each hop over one
//! point, read from the services' own gRPC histograms and from Redis's
//! command statistics before and after it.
//!
//! The load generator sees one number per RouteCall. Routing's server
//! histogram says how much of it was spent inside routing, its client
//! histograms how long it waited on profile and classification, and their
//! server histograms how much of that wait was their own work; the rest of
//! each wait is the hop itself (HTTP/2, the kernel, waking a thread). Redis
//! reports the CPU each script took. Means, not percentiles: a Prometheus
//! histogram's sum and count are exact, its buckets are not.

use std::collections::HashMap;

use anyhow::Context as _;
use rapportctl::mesh::Mesh;
use serde::Serialize;

/// Sums and counts of every `*_handling_seconds` series of every service,
/// and Redis's per-command calls and microseconds.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// (process, series labels) → (sum seconds, count).
    grpc: HashMap<(String, String), (f64, u64)>,
    /// Redis command → (calls, microseconds).
    redis: HashMap<String, (u64, u64)>,
    /// Process → CPU seconds (user + system) it has used so far.
    cpu: Vec<(String, f64)>,
}

/// One line of the breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// What was measured, e.g. "routing → profile LookupByPhone (client)".
    pub what: String,
    /// Calls per measured RouteCall.
    pub per_call: f64,
    /// Mean milliseconds per call of this hop.
    pub mean_ms: f64,
}

/// Reads every service's metrics and Redis's command statistics.
pub async fn snapshot(mesh: &Mesh) -> anyhow::Result<Snapshot> {
    let mut out = Snapshot::default();
    let services = [
        ("routing", &mesh.routing[0]),
        ("profile", &mesh.profile),
        ("classification", &mesh.classification),
    ];
    for (name, service) in services {
        let text = service
            .metrics()
            .await
            .with_context(|| format!("failed to read {name}'s metrics"))?;
        for (labels, sum, count) in handling_series(&text) {
            out.grpc.insert((name.to_owned(), labels), (sum, count));
        }
    }
    let client = redis::Client::open(mesh.redis.url()).context("failed to open redis")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("failed to connect to redis")?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .context("failed to read redis commandstats")?;
    out.redis = command_stats(&info);
    let server: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .context("failed to read redis's process id")?;
    let redis_pid = server
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse::<u32>().ok());
    let mut pids = vec![
        ("routing", Some(mesh.routing[0].child.pid())),
        ("profile", Some(mesh.profile.child.pid())),
        ("classification", Some(mesh.classification.child.pid())),
        ("redis", redis_pid),
        ("load generator (this process)", Some(std::process::id())),
    ];
    for (name, pid) in pids.drain(..) {
        if let Some(seconds) = pid.and_then(cpu_seconds) {
            out.cpu.push((name.to_owned(), seconds));
        }
    }
    Ok(out)
}

/// User plus system CPU seconds of a process and all its threads, from
/// /proc/<pid>/stat (fields 14 and 15, in USER_HZ ticks, which Linux fixes
/// at 100 per second for user space). None off Linux or once it exited.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat)
}

fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces;
    // fields are counted after its closing parenthesis (field 3 first).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `(labels, sum, count)` of each `{grpc_server,grpc_client}_handling_seconds`
/// series in a Prometheus text exposition; labels are kept as written,
/// prefixed with the side.
fn handling_series(text: &str) -> Vec<(String, f64, u64)> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        for side in ["grpc_server", "grpc_client"] {
            let Some(rest) = line.strip_prefix(side) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix("_handling_seconds_") else {
                continue;
            };
            let (kind, rest) = match rest.split_once('{') {
                Some((kind, rest)) => (kind, rest),
                None => continue,
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let key = format!("{side}{{{labels}}}");
            match kind {
                "sum" => {
                    if let Ok(v) = value.trim().parse() {
                        sums.insert(key, v);
                    }
                }
                "count" => {
                    if let Ok(v) = value.trim().parse() {
                        counts.insert(key, v);
                    }
                }
                _ => {}
            }
        }
    }
    sums.into_iter()
        .filter_map(|(k, s)| counts.get(&k).map(|c| (k, s, *c)))
        .collect()
}

/// `cmdstat_<cmd>:calls=N,usec=M,...` lines of `INFO commandstats`.
fn command_stats(info: &str) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((cmd, fields)) = rest.split_once(':') else {
            continue;
        };
        let mut calls = None;
        let mut usec = None;
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", v)) => calls = v.trim().parse().ok(),
                Some(("usec", v)) => usec = v.trim().parse().ok(),
                _ => {}
            }
        }
        if let (Some(c), Some(u)) = (calls, usec) {
            out.insert(cmd.to_owned(), (c, u));
        }
    }
    out
}

/// CPU milliseconds each process used per RouteCall routing served between
/// two snapshots: on a shared machine a steadier measure of what a cycle
/// costs than its rate, which moves with the neighbours' load.
pub fn cpu_per_route(before: &Snapshot, after: &Snapshot) -> Vec<Hop> {
    let calls = route_calls(before, after).max(1) as f64;
    let mut out: Vec<Hop> = after
        .cpu
        .iter()
        .filter_map(|(name, s1)| {
            let s0 = before.cpu.iter().find(|(n, _)| n == name)?.1;
            Some(Hop {
                what: name.clone(),
                per_call: 1.0,
                mean_ms: (s1 - s0) * 1000.0 / calls,
            })
        })
        .collect();
    let total: f64 = out.iter().map(|h| h.mean_ms).sum();
    out.push(Hop {
        what: "all of them".into(),
        per_call: 1.0,
        mean_ms: total,
    });
    out
}

/// RouteCalls routing served between two snapshots.
fn route_calls(before: &Snapshot, after: &Snapshot) -> u64 {
    let count = |s: &Snapshot| -> u64 {
        s.grpc
            .iter()
            .filter(|((p, labels), _)| {
                p == "routing"
                    && labels.starts_with("grpc_server")
                    && labels.contains("grpc_method=\"RouteCall\"")
            })
            .map(|(_, (_, c))| *c)
            .sum()
    };
    count(after).saturating_sub(count(before))
}

/// The hops of RouteCall between two snapshots, per RouteCall routing
/// served between them (warm-up included: the snapshots cannot tell it
/// apart, and it runs the same calls).
pub fn route_hops(before: &Snapshot, after: &Snapshot) -> Vec<Hop> {
    let grpc = |process: &str, side: &str, method: &str| -> Option<(f64, u64)> {
        let pick = |s: &Snapshot| -> (f64, u64) {
            s.grpc
                .iter()
                .filter(|((p, labels), _)| {
                    p == process
                        && labels.starts_with(side)
                        && labels.contains(&format!("grpc_method=\"{method}\""))
                })
                .fold((0.0, 0), |(s, c), (_, (ds, dc))| (s + ds, c + dc))
        };
        let (s1, c1) = pick(after);
        let (s0, c0) = pick(before);
        let n = c1.saturating_sub(c0);
        (n > 0).then(|| ((s1 - s0) / n as f64, n))
    };
    let route = grpc("routing", "grpc_server", "RouteCall");
    let calls = route.map_or(1, |(_, n)| n) as f64;
    let mut hops = Vec::new();
    let mut push = |what: String, found: Option<(f64, u64)>| {
        if let Some((mean_s, n)) = found {
            hops.push(Hop {
                what,
                per_call: n as f64 / calls,
                mean_ms: mean_s * 1000.0,
            });
        }
    };
    push("routing RouteCall (server)".into(), route);
    for (service, method) in [
        ("profile", "LookupByPhone"),
        ("profile", "GetProfile"),
        ("classification", "Classify"),
    ] {
        push(
            format!("routing → {service} {method} (client)"),
            grpc("routing", "grpc_client", method),
        );
        push(
            format!("{service} {method} (server)"),
            grpc(service, "grpc_server", method),
        );
    }
    let mut scripts: Vec<(&String, u64, u64)> = after
        .redis
        .iter()
        .filter_map(|(cmd, (c1, u1))| {
            let (c0, u0) = before.redis.get(cmd).copied().unwrap_or_default();
            let n = c1.saturating_sub(c0);
            (n > 0).then(|| (cmd, n, u1.saturating_sub(u0)))
        })
        .collect();
    scripts.sort_by_key(|s| std::cmp::Reverse(s.2));
    for (cmd, n, usec) in scripts.into_iter().take(4) {
        hops.push(Hop {
            what: format!("redis {cmd} (CPU inside Redis)"),
            per_call: n as f64 / calls,
            mean_ms: usec as f64 / n as f64 / 1000.0,
        });
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handling_series_pair_sums_with_counts() {
        let text = "\
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{grpc_service=\"rapport.v1.RoutingService\",grpc_method=\"RouteCall\",le=\"0.005\"} 9
grpc_server_handling_seconds_sum{grpc_service=\"rapport.v1.RoutingService\",grpc_method=\"RouteCall\"} 0.02
grpc_server_handling_seconds_count{grpc_service=\"rapport.v1.RoutingService\",grpc_method=\"RouteCall\"} 10
grpc_client_handling_seconds_sum{grpc_service=\"rapport.v1.ProfileService\",grpc_method=\"LookupByPhone\"} 0.005
grpc_client_handling_seconds_count{grpc_service=\"rapport.v1.ProfileService\",grpc_method=\"LookupByPhone\"} 10
";
        let mut series = handling_series(text);
        series.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(series.len(), 2);
        assert!(series[0].0.starts_with("grpc_client{"));
        assert_eq!(series[0].2, 10);
        assert!((series[1].1 - 0.02).abs() < 1e-12);
    }

    #[test]
    fn hops_are_means_of_the_difference() {
        let mut before = Snapshot::default();
        let mut after = Snapshot::default();
        let key = (
            "routing".to_owned(),
            "grpc_server{grpc_service=\"s\",grpc_method=\"RouteCall\"}".to_owned(),
        );
        before.grpc.insert(key.clone(), (1.0, 100));
        after.grpc.insert(key, (1.5, 200));
        before.redis.insert("evalsha".into(), (50, 5_000));
        after.redis.insert("evalsha".into(), (250, 25_000));
        let hops = route_hops(&before, &after);
        assert_eq!(hops[0].what, "routing RouteCall (server)");
        assert!((hops[0].mean_ms - 5.0).abs() < 1e-9);
        assert!((hops[0].per_call - 1.0).abs() < 1e-9);
        let redis = hops.iter().find(|h| h.what.contains("evalsha")).unwrap();
        assert!((redis.per_call - 2.0).abs() < 1e-9);
        assert!((redis.mean_ms - 0.1).abs() < 1e-9);
    }

    #[test]
    fn cpu_is_read_after_the_command_name() {
        // Field 2 may hold spaces and parentheses; utime 250 and stime 50
        // ticks are 3 s.
        let stat = "42 (tokio (rt) w) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn cpu_is_divided_by_the_route_calls_between() {
        let key = (
            "routing".to_owned(),
            "grpc_server{grpc_service=\"s\",grpc_method=\"RouteCall\"}".to_owned(),
        );
        let mut before = Snapshot::default();
        before.grpc.insert(key.clone(), (0.0, 0));
        before.cpu = vec![("routing".into(), 1.0), ("redis".into(), 2.0)];
        let mut after = Snapshot::default();
        after.grpc.insert(key, (0.0, 500));
        after.cpu = vec![("routing".into(), 2.0), ("redis".into(), 2.5)];
        let cpu = cpu_per_route(&before, &after);
        assert_eq!(cpu.len(), 3);
        assert!((cpu[0].mean_ms - 2.0).abs() < 1e-9);
        assert!((cpu[1].mean_ms - 1.0).abs() < 1e-9);
        assert_eq!(cpu[2].what, "all of them");
        assert!((cpu[2].mean_ms - 3.0).abs() < 1e-9);
    }

    #[test]
    fn command_stats_read_calls_and_microseconds() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(command_stats(info)["evalsha"], (12, 340));
    }
}
