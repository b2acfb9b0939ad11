//! The report: every measured point, the route bookkeeping, the redis
//! floors and the comparisons (a figure, its floor from the same run, the
//! ratio and the target), as JSON and as a markdown table, with the
//! machine it ran on.

use serde::Serialize;

use crate::floors::RedisFigure;
use crate::load::Stats;
use crate::scenarios::RouteBooks;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub date: String,
    pub load_avg: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// A figure beside its floor.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub figure: String,
    pub value: f64,
    pub floor: String,
    pub floor_value: f64,
    pub unit: String,
    /// value / floor_value.
    pub ratio: f64,
    /// The target for the ratio, e.g. "≥ 0.25".
    pub target: String,
}

impl Comparison {
    pub fn new(
        figure: &str,
        value: f64,
        floor: &str,
        floor_value: f64,
        unit: &str,
        target: &str,
    ) -> Self {
        Self {
            figure: figure.into(),
            value,
            floor: floor.into(),
            floor_value,
            unit: unit.into(),
            ratio: if floor_value > 0.0 {
                value / floor_value
            } else {
                f64::NAN
            },
            target: target.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    pub agents: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub rps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub comparisons: Vec<Comparison>,
    pub points: Vec<Stats>,
    pub scaling: Vec<ScalingPoint>,
    pub redis: Vec<RedisFigure>,
    /// Where a RouteCall's time goes at one in flight (`breakdown`).
    pub route_hops: Vec<crate::breakdown::Hop>,
    /// CPU per RouteCall cycle of each process, saturated
    /// (`breakdown::cpu_per_route`).
    pub cycle_cpu: Vec<crate::breakdown::Hop>,
    pub route_books: RouteBooks,
    pub notes: Vec<String>,
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

impl Report {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        out.push_str(&format!(
            "Machine: {} × {} · {} · load average at start {} · everything (services, Redis, SQLite, load generator) on this machine\n\n",
            m.nproc, m.cpu, m.date, m.load_avg
        ));
        out.push_str("| figure | value | floor (same run) | floor value | ratio | target |\n");
        out.push_str("|---|---:|---|---:|---:|---|\n");
        for c in &self.comparisons {
            out.push_str(&format!(
                "| {} | {} {} | {} | {} {} | {} | {} |\n",
                c.figure,
                fmt_num(c.value),
                c.unit,
                c.floor,
                fmt_num(c.floor_value),
                c.unit,
                fmt_num(c.ratio),
                c.target
            ));
        }
        if !self.points.is_empty() {
            out.push_str("\n| point | mode | ok | errors | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n");
            out.push_str("|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
        }
        for p in &self.points {
            let mode = match p.mode {
                crate::load::Mode::Open {
                    rate,
                    max_in_flight,
                } => format!("open {rate:.0}/s (≤{max_in_flight})"),
                crate::load::Mode::Closed { in_flight } => format!("{in_flight} in flight"),
            };
            let errors = if p.errors.is_empty() {
                "0".to_owned()
            } else {
                let by_code = p
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{by_code} (failed in p99 {} ms)", ms(p.error_p99_us))
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.name,
                mode,
                p.ok,
                errors,
                fmt_num(p.rps),
                ms(p.p50_us),
                ms(p.p90_us),
                ms(p.p99_us),
                ms(p.p999_us),
                ms(p.max_us)
            ));
        }
        if !self.scaling.is_empty() {
            out.push_str("\n| agents logged in | RouteCall p50 ms (1 in flight) | p99 ms | rps |\n|---:|---:|---:|---:|\n");
            for s in &self.scaling {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    s.agents,
                    ms(s.p50_us),
                    ms(s.p99_us),
                    fmt_num(s.rps)
                ));
            }
        }
        if !self.redis.is_empty() {
            out.push_str("\n| redis-benchmark | clients | rps | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|\n");
            for r in &self.redis {
                let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3}"));
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.name,
                    r.clients,
                    fmt_num(r.rps),
                    opt(r.p50_ms),
                    opt(r.p99_ms)
                ));
            }
        }
        if !self.route_hops.is_empty() {
            out.push_str(
                "\nWhere a RouteCall's time goes, 1 in flight (means from the services' own \
                 histograms and Redis's command statistics; a client time less its server's is \
                 the hop):\n\n| hop | calls per RouteCall | mean ms |\n|---|---:|---:|\n",
            );
            for h in &self.route_hops {
                out.push_str(&format!(
                    "| {} | {:.2} | {:.3} |\n",
                    h.what, h.per_call, h.mean_ms
                ));
            }
        }
        if !self.cycle_cpu.is_empty() {
            out.push_str(
                "\nCPU per RouteCall cycle while cycles run saturated (user + system time from \
                 /proc, per RouteCall; steadier than rates on a shared machine):\n\n\
                 | process | CPU ms per cycle |\n|---|---:|\n",
            );
            for h in &self.cycle_cpu {
                out.push_str(&format!("| {} | {:.3} |\n", h.what, h.mean_ms));
            }
        }
        let b = &self.route_books;
        if b.routed > 0 {
            out.push_str(&format!(
            "\nRoute correctness (the generator's own books, all route runs): {} routed, {} assigned, {} queued ({} later assigned from the queue, {} still queued at the end), {} completed, **{} double assignments**, **{} lost contacts**, {} accept / {} complete errors, {} accept / complete calls tried again after being shed.\n",
            b.routed, b.assigned, b.queued, b.assigned_from_queue, b.queued_at_end, b.completed,
            b.double_assignments, b.lost, b.accept_errors, b.complete_errors, b.follow_up_retries
        ));
            if !b.queued_by_group.is_empty() {
                let groups: Vec<String> = b
                    .queued_by_group
                    .iter()
                    .map(|(g, n)| format!("`{g}` {n}"))
                    .collect();
                out.push_str(&format!(
                    "Queued by requirement group: {}.\n",
                    groups.join(", ")
                ));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("\n- {n}"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Mode;
    use std::collections::BTreeMap;

    fn stats(name: &str) -> Stats {
        Stats {
            name: name.into(),
            mode: Mode::Closed { in_flight: 1 },
            count: 10,
            ok: 9,
            errors: BTreeMap::from([("Unavailable".to_owned(), 1)]),
            rps: 900.0,
            p50_us: 1_234,
            p90_us: 2_000,
            p99_us: 3_000,
            p999_us: 4_000,
            max_us: 5_000,
            mean_us: 1_300.0,
            measured_s: 0.01,
            error_p99_us: 250,
        }
    }

    #[test]
    fn ratios_are_value_over_floor() {
        let c = Comparison::new("a", 250.0, "b", 1000.0, "rps", "≥ 0.25");
        assert!((c.ratio - 0.25).abs() < 1e-12);
        assert!(Comparison::new("a", 1.0, "b", 0.0, "", "").ratio.is_nan());
    }

    #[test]
    fn the_markdown_has_every_figure_floor_and_ratio() {
        let report = Report {
            machine: Machine {
                nproc: 2,
                cpu: "Test CPU".into(),
                date: "2026-01-01 00:00 UTC".into(),
                load_avg: "1.00 1.00 1.00".into(),
            },
            settings: serde_json::json!({}),
            comparisons: vec![Comparison::new(
                "RouteCall saturated",
                1500.0,
                "echo saturated",
                6000.0,
                "rps",
                "≥ 0.25",
            )],
            points: vec![stats("echo")],
            scaling: vec![ScalingPoint {
                agents: 100,
                p50_us: 1500,
                p99_us: 3000,
                rps: 500.0,
            }],
            redis: vec![RedisFigure {
                name: "SET".into(),
                clients: 1,
                rps: 20000.0,
                p50_ms: Some(0.04),
                p99_ms: None,
            }],
            route_hops: vec![crate::breakdown::Hop {
                what: "routing RouteCall (server)".into(),
                per_call: 1.0,
                mean_ms: 1.5,
            }],
            cycle_cpu: vec![crate::breakdown::Hop {
                what: "redis".into(),
                per_call: 1.0,
                mean_ms: 0.25,
            }],
            route_books: RouteBooks {
                routed: 3,
                ..RouteBooks::default()
            },
            notes: vec!["noisy".into()],
        };
        let md = report.markdown();
        assert!(md.contains("2 × Test CPU"), "{md}");
        assert!(
            md.contains(
                "| RouteCall saturated | 1500 rps | echo saturated | 6000 rps | 0.25 | ≥ 0.25 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| echo | 1 in flight | 9 | Unavailable: 1 (failed in p99 0.25 ms) | 900 | 1.23 | 2.00 | 3.00 | 4.00 | 5.00 |"),
            "{md}"
        );
        assert!(md.contains("| 100 | 1.50 | 3.00 | 500 |"), "{md}");
        assert!(md.contains("| SET | 1 | 20000 | 0.040 | – |"), "{md}");
        assert!(md.contains("**0 double assignments**"), "{md}");
        assert!(
            md.contains("| routing RouteCall (server) | 1.00 | 1.500 |"),
            "{md}"
        );
        assert!(md.contains("| redis | 0.250 |"), "{md}");
        // Every table row has the same number of cells as its header.
        for table in md.split("\n\n") {
            let rows: Vec<_> = table.lines().filter(|l| l.starts_with('|')).collect();
            if let Some(head) = rows.first() {
                let n = head.matches('|').count();
                assert!(rows.iter().all(|r| r.matches('|').count() == n), "{table}");
            }
        }
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["points"][0]["mode"], "closed");
        assert_eq!(json["points"][0]["in_flight"], 1);
    }
}
