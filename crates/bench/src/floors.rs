//! The floors every figure is compared with, measured in the same run on
//! the same machine: a bare tonic server (grpc.health.v1 `Check` from
//! tonic-health, answered at once — no middleware, no work) on its own
//! runtime thread, and `redis-benchmark` against the mesh's private Redis.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::load::{FollowUp, Op};

/// Starts the bare tonic echo server on loopback, on its own 2-worker
/// runtime, and returns its address. Two workers, tokio's default on this
/// machine, whatever `--service-worker-threads` gives the services: the
/// floor stays what a bare tonic server does with the machine to itself,
/// and is not changed by a setting chosen for the mesh.
pub fn start_echo_server() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind echo server")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("echo-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("echo runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let (_reporter, service) = tonic_health::server::health_reporter();
                // Without TCP_NODELAY, Nagle's algorithm holds a small
                // response back until the client's delayed ACK, ~40 ms.
                // The services set it on their listeners, so the floor does
                // too; without it the saturated echo p99 was 42.7 ms.
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await;
            });
        })
        .context("spawn echo server thread")?;
    Ok(addr)
}

/// grpc.health.v1 Check against the echo server.
pub struct EchoOp {
    pub client: HealthClient<Channel>,
}

impl Op for EchoOp {
    fn call(&self, _i: u64) -> BoxFuture<'static, Result<Option<FollowUp>, tonic::Code>> {
        let mut client = self.client.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| None)
                .map_err(|s| s.code())
        }
        .boxed()
    }
}

pub async fn echo_op(addr: SocketAddr) -> anyhow::Result<Arc<dyn Op>> {
    let channel = rapportctl::mesh::connect(&format!("http://{addr}")).await?;
    Ok(Arc::new(EchoOp {
        client: HealthClient::new(channel),
    }))
}

/// One redis-benchmark test.
#[derive(Debug, Clone, Serialize)]
pub struct RedisFigure {
    pub name: String,
    pub clients: u32,
    pub rps: f64,
    /// Present with redis-benchmark ≥ 7 (the extended CSV).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Runs `redis-benchmark --csv` with `clients` connections and `requests`
/// requests of `args` (e.g. `["-t", "set"]`, or a raw command).
pub fn redis_benchmark(
    port: u16,
    name: &str,
    clients: u32,
    requests: u32,
    args: &[&str],
) -> anyhow::Result<RedisFigure> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(args)
        .output()
        .context("failed to run redis-benchmark")?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows = parse_redis_csv(&String::from_utf8_lossy(&out.stdout));
    let (_, rps, p50, p99) = rows
        .into_iter()
        .next()
        .context("redis-benchmark printed no result")?;
    Ok(RedisFigure {
        name: name.to_owned(),
        clients,
        rps,
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// The Lua used for the EVALSHA floor: the shape of a reservation (read the
/// best idle member of a sorted set, write a hash), not our real script.
pub const RESERVE_LIKE_LUA: &str = "local a = redis.call('ZREVRANGE', KEYS[1], 0, 0) redis.call('HINCRBY', KEYS[2], 'n', 1) return a";

/// Seeds the keys RESERVE_LIKE_LUA reads and loads it; returns its SHA.
pub fn load_reserve_like(port: u16) -> anyhow::Result<String> {
    let cli = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .context("failed to run redis-cli")?;
        if !out.status.success() {
            bail!("redis-cli failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut zadd = vec!["ZADD", "bench:idle"];
    let members: Vec<String> = (0..100).map(|i| format!("{i} a{i}")).collect();
    for m in &members {
        zadd.extend(m.split(' '));
    }
    cli(&zadd)?;
    let sha = cli(&["SCRIPT", "LOAD", RESERVE_LIKE_LUA])?;
    if sha.len() != 40 {
        bail!("SCRIPT LOAD answered {sha:?}");
    }
    Ok(sha)
}

/// Parses redis-benchmark's `--csv` output: an optional header
/// (`"test","rps","avg_latency_ms",…,"p50_latency_ms",…,"p99_latency_ms",…`)
/// then one row per test. Returns (test, rps, p50 ms, p99 ms).
pub fn parse_redis_csv(text: &str) -> Vec<(String, f64, Option<f64>, Option<f64>)> {
    // Fields are double-quoted and may hold commas (a raw command's name).
    let split = |line: &str| -> Vec<String> {
        let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        fields.into_iter().map(|f| f.trim().to_owned()).collect()
    };
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields = split(line);
        if fields.first().map(String::as_str) == Some("test") {
            columns = Some(fields);
            continue;
        }
        let Some(rps) = fields.get(1).and_then(|f| f.parse::<f64>().ok()) else {
            continue;
        };
        let col = |name: &str| {
            columns
                .as_ref()
                .and_then(|c| c.iter().position(|h| h == name))
                .and_then(|i| fields.get(i))
                .and_then(|f| f.parse::<f64>().ok())
        };
        rows.push((
            fields[0].clone(),
            rps,
            col("p50_latency_ms"),
            col("p99_latency_ms"),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_extended_csv_of_redis_7() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"81234.56\",\"0.321\",\"0.100\",\"0.303\",\"0.500\",\"0.711\",\"2.000\"\n";
        let rows = parse_redis_csv(text);
        assert_eq!(
            rows,
            vec![("SET".into(), 81234.56, Some(0.303), Some(0.711))]
        );
    }

    #[test]
    fn a_raw_command_with_commas_in_its_name_is_one_field() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVAL return redis.call('ZSCORE', KEYS[1], ARGV[1]) 1 bench:z m\",\"23529.41\",\"0.128\",\"0.024\",\"0.071\",\"0.335\",\"2.479\",\"4.335\"\n";
        let rows = parse_redis_csv(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1, 23529.41);
        assert_eq!(rows[0].2, Some(0.071));
        assert_eq!(rows[0].3, Some(2.479));
    }

    #[test]
    fn parses_the_short_csv_of_older_versions() {
        let rows = parse_redis_csv("\"SET\",\"50000.00\"\n\"GET\",\"60000.00\"\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], ("GET".into(), 60000.0, None, None));
    }
}
