//! The whole benchmark, shrunk: every scenario runs against the real mesh
//! (the debug binaries beside `rapport-bench`) with tiny counts and
//! durations, and the report must hold every figure with its floor, books
//! without a double assignment or a lost contact, and its two plots. No
//! figure is checked: numbers come from `make bench`, never from a test.

use std::process::Command;

#[test]
fn every_scenario_runs_and_reports_its_figures_with_clean_books() {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_rapport-bench"))
        .args([
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--rate",
            "40",
            "--saturate",
            "4",
            "--agents",
            "20",
            "--scale",
            "40",
            "--profiles",
            "10",
            "--million-profiles",
            "200",
            "--million-agents",
            "30",
            "--million-rate",
            "40",
            "--million-duration",
            "500ms",
            "--outreach-tasks",
            "300",
        ])
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run rapport-bench (build the workspace's binaries first: cargo build --workspace --bins)");
    assert!(status.success(), "rapport-bench failed: {status}");

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("latest.json")).expect("latest.json"),
    )
    .expect("the JSON report parses");
    let figures: Vec<&str> = report["comparisons"]
        .as_array()
        .expect("comparisons")
        .iter()
        .map(|c| c["figure"].as_str().unwrap_or(""))
        .collect();
    for wanted in [
        "Outreach no-op care tasks/s",
        "RouteCall p50, 1 in flight",
        "RouteCall cycles/s saturated",
        "RouteCall goodput at 2× saturation",
        "RouteCall p99 open loop 40/s",
        "GetProfile p99 open loop",
        "LookupByPhone p50, 1 in flight",
        "Classify p50, 1 in flight",
        "agents, 200 profiles",
        "RouteCall cycles/s saturated, 30 agents, 200 profiles",
        "RouteCall p50 at 40 agents",
    ] {
        assert!(
            figures.iter().any(|f| f.contains(wanted)),
            "{wanted:?} missing from {figures:#?}"
        );
    }
    for c in report["comparisons"].as_array().expect("comparisons") {
        assert!(
            c["floor_value"].as_f64().is_some_and(|v| v > 0.0),
            "a figure without its floor: {c}"
        );
    }
    let books = &report["route_books"];
    assert!(books["routed"].as_u64().unwrap_or(0) > 0, "{books}");
    assert_eq!(books["double_assignments"], 0, "{books}");
    assert_eq!(books["lost"], 0, "{books}");
    // The breakdown read every hop from the running mesh: each one a
    // positive time, once per RouteCall for the server and both
    // dependencies, and every process's CPU per cycle.
    let hops = report["route_hops"].as_array().expect("route_hops");
    for what in [
        "routing RouteCall (server)",
        "profile LookupByPhone (server)",
        "classification Classify (server)",
    ] {
        let hop = hops
            .iter()
            .find(|h| h["what"] == what)
            .unwrap_or_else(|| panic!("{what:?} missing from {hops:#?}"));
        assert!(hop["mean_ms"].as_f64().is_some_and(|v| v > 0.0), "{hop}");
        assert!(
            hop["per_call"]
                .as_f64()
                .is_some_and(|v| (v - 1.0).abs() < 0.2),
            "{hop}"
        );
    }
    assert!(
        hops.iter().any(|h| h["what"]
            .as_str()
            .is_some_and(|w| w.starts_with("redis evalsha"))),
        "{hops:#?}"
    );
    let cpu = report["cycle_cpu"].as_array().expect("cycle_cpu");
    // /proc counts in 10 ms ticks, which a process may not reach in this
    // short a point; the whole mesh does.
    for process in [
        "routing",
        "profile",
        "classification",
        "redis",
        "all of them",
    ] {
        let line = cpu
            .iter()
            .find(|h| h["what"] == process)
            .unwrap_or_else(|| panic!("{process:?} missing from {cpu:#?}"));
        let least = if process == "all of them" {
            f64::MIN_POSITIVE
        } else {
            0.0
        };
        assert!(
            line["mean_ms"].as_f64().is_some_and(|v| v >= least),
            "{line}"
        );
    }
    let md = std::fs::read_to_string(out.path().join("latest.md")).expect("latest.md");
    assert!(md.contains("Where a RouteCall's time goes"), "{md}");
    assert!(md.contains("CPU per RouteCall cycle"), "{md}");
    assert!(md.contains("**0 double assignments**"), "{md}");
    for plot in ["latency-vs-load.png", "p50-vs-agents.png"] {
        let bytes = std::fs::read(out.path().join(plot)).expect(plot);
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{plot} is not a PNG"
        );
    }
}
