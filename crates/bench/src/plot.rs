//! PNG plots of the report, written beside `latest.{json,md}`: RouteCall
//! latency percentiles against load with the echo floor on the same axes
//! (`latency-vs-load.png`), and RouteCall p50 against agents logged in with
//! the scaling target (`p50-vs-agents.png`). Text is drawn with a
//! font embedded in the binary, so no font needs to be installed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::load::{Mode, Stats};
use crate::report::{Report, ScalingPoint};

/// Width and height of every plot, in pixels.
pub const SIZE: (u32, u32) = (1280, 800);
pub const LATENCY_VS_LOAD: &str = "latency-vs-load.png";
pub const P50_VS_AGENTS: &str = "p50-vs-agents.png";

/// The scaling target: p50 at 100,000 agents ≤ 1.25 × p50 at 100.
const SCALING_TARGET: f64 = 1.25;
/// The family every text style below names; `register_font` maps it to the
/// embedded font.
const FONT: &str = "sans-serif";
/// Width of the legend panel right of the latency chart.
const LEGEND_WIDTH: u32 = 330;

const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
];

/// Writes the plots `report` has data for into `dir` and returns their
/// paths. A plot whose data the report lacks (its scenario was not run) is
/// skipped, and a file of that name left in `dir` by an earlier run is
/// removed so that the plots beside `latest.json` are always its own.
pub fn write_plots(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let agents = report
        .settings
        .get("agents")
        .and_then(serde_json::Value::as_u64);
    write_plots_of(&report.points, &report.scaling, agents, dir)
}

/// `write_plots` on the parts of the report it uses; `agents` is the
/// `--agents` setting, which names the route scenario's points.
fn write_plots_of(
    points: &[Stats],
    scaling: &[ScalingPoint],
    agents: Option<u64>,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow::anyhow!("the embedded font does not parse"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut written = Vec::new();

    let path = dir.join(LATENCY_VS_LOAD);
    let (config, route) = route_points(points, agents);
    if route.is_empty() {
        remove_stale(&path)?;
    } else {
        let echo = load_points(points.iter().filter(|p| p.name.starts_with("echo")));
        latency_vs_load(&path, &config, &route, &echo)
            .with_context(|| format!("draw {}", path.display()))?;
        written.push(path);
    }

    let path = dir.join(P50_VS_AGENTS);
    let mut curve: Vec<&ScalingPoint> = scaling
        .iter()
        .filter(|s| s.agents > 0 && s.p50_us > 0)
        .collect();
    curve.sort_by_key(|s| s.agents);
    if curve.is_empty() {
        remove_stale(&path)?;
    } else {
        p50_vs_agents(&path, &curve).with_context(|| format!("draw {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn remove_stale(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove stale {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// One measured point on the load axis.
#[derive(Debug, Clone, PartialEq)]
struct LoadPoint {
    /// Open loop: the offered rate; closed loop: the achieved rps.
    load: f64,
    open: bool,
    /// How it was driven: "1 in flight", "300/s offered".
    how: String,
    /// p50, p90, p99, p99.9 in ms.
    ms: [f64; 4],
}

fn load_points<'a>(stats: impl Iterator<Item = &'a Stats>) -> Vec<LoadPoint> {
    let mut points: Vec<LoadPoint> = stats
        .filter(|s| s.ok > 0)
        .filter_map(|s| {
            let (load, open, how) = match s.mode {
                Mode::Open { rate, .. } => (rate, true, format!("{rate:.0}/s offered")),
                Mode::Closed { in_flight } => (s.rps, false, format!("{in_flight} in flight")),
            };
            (load.is_finite() && load > 0.0).then(|| LoadPoint {
                load,
                open,
                how,
                // A log axis has no 0: a sub-microsecond percentile is 1 µs.
                ms: [s.p50_us, s.p90_us, s.p99_us, s.p999_us].map(|us| us.max(1) as f64 / 1e3),
            })
        })
        .collect();
    points.sort_by(|a, b| a.load.total_cmp(&b.load));
    points
}

/// The route scenario's RouteCall points (1 in flight, saturated, the open
/// loop ones), whose names end in "(N agents)" with N = `--agents`, and
/// that configuration ("N agents"). The scaling curve's points and the
/// million point are RouteCall at other agent counts or another data set,
/// and would mix configurations on one curve. Without the setting, the
/// first RouteCall point's configuration is taken.
fn route_points(points: &[Stats], agents: Option<u64>) -> (String, Vec<LoadPoint>) {
    let route = || points.iter().filter(|p| p.name.starts_with("RouteCall"));
    let suffix = match agents {
        Some(n) => format!("({n} agents)"),
        None => match route().find_map(|p| p.name.rfind('(').map(|i| &p.name[i..])) {
            Some(s) => s.to_owned(),
            None => return (String::new(), Vec::new()),
        },
    };
    let chosen = load_points(route().filter(|p| p.name.ends_with(&suffix)));
    (suffix.trim_matches(['(', ')']).to_owned(), chosen)
}

/// 1, 2, 5 × 10^k ticks within `lo..=hi`.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut exp = lo.log10().floor() as i32;
    while 10f64.powi(exp) <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(exp);
            if (lo..=hi).contains(&v) {
                ticks.push(v);
            }
        }
        exp += 1;
    }
    ticks
}

/// A tick value without float noise: 0.05, 0.2, 1, 20, 500, 1k, 20k, 1M.
fn short(v: f64) -> String {
    let (v, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let rounded = format!("{v:.3}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}{unit}")
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

fn anchored<'a>(style: TextStyle<'a>, h: HPos, v: VPos) -> TextStyle<'a> {
    style.pos(Pos::new(h, v))
}

fn latency_vs_load(
    path: &Path,
    config: &str,
    route: &[LoadPoint],
    echo: &[LoadPoint],
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);

    let all = || route.iter().chain(echo);
    let (x_lo, x_hi) = min_max(all().map(|p| p.load));
    let (y_lo, y_hi) = min_max(all().flat_map(|p| p.ms));
    let (x_lo, x_hi) = (x_lo / 1.6, x_hi * 1.6);
    let (y_lo, y_hi) = (y_lo / 1.6, y_hi * 1.6);

    let mut chart = ChartBuilder::on(&chart_area)
        .caption(
            format!("RouteCall latency against load ({config}), echo floor of the same run"),
            text(24),
        )
        .margin(20)
        .x_label_area_size(64)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x_lo..x_hi)
                .log_scale()
                .with_key_points(ticks_125(x_lo, x_hi)),
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(ticks_125(y_lo, y_hi)),
        )?;
    chart
        .configure_mesh()
        .x_desc("load, requests/s (log scale; open loop: offered rate, closed loop: achieved)")
        .y_desc("latency, ms (log scale)")
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(text(16))
        .axis_desc_style(text(18))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    for (k, colour) in COLOURS.iter().enumerate() {
        let line = colour.stroke_width(2);
        let at = |p: &LoadPoint| (p.load, p.ms[k]);
        chart.draw_series(LineSeries::new(route.iter().map(at), line))?;
        chart.draw_series(DashedLineSeries::new(echo.iter().map(at), 10, 6, line))?;
        for (points, style) in [(route, colour.filled()), (echo, line)] {
            chart.draw_series(
                points
                    .iter()
                    .filter(|p| !p.open)
                    .map(|p| Circle::new(at(p), 5, style)),
            )?;
            chart.draw_series(
                points
                    .iter()
                    .filter(|p| p.open)
                    .map(|p| TriangleMarker::new(at(p), 7, style)),
            )?;
        }
    }

    // How each point was driven, under its p50.
    let grey = BLACK.mix(0.75);
    let under = anchored(text(13).color(&grey), HPos::Center, VPos::Top);
    chart.draw_series(route.iter().chain(echo).map(|p| {
        EmptyElement::at((p.load, p.ms[0])) + Text::new(p.how.clone(), (0, 10), under.clone())
    }))?;

    draw_legend(&legend_area, config)?;
    root.present()?;
    Ok(())
}

/// The latency chart's legend, in its own panel so it never hides a point.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    config: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let heading = anchored(text(17), HPos::Left, VPos::Center);
    let label = anchored(text(16), HPos::Left, VPos::Center);
    let (x0, x1, tx) = (16, 56, 66);
    let top = 90;
    let mut y = top;
    for (dashed, who) in [
        (false, format!("RouteCall ({config}), solid")),
        (true, "echo floor (bare tonic), dashed".to_owned()),
    ] {
        area.draw(&Text::new(who, (x0, y), heading.clone()))?;
        y += 28;
        for (name, colour) in PERCENTILES.iter().zip(COLOURS) {
            let style = colour.stroke_width(2);
            let segments: &[(i32, i32)] = if dashed {
                &[(x0, x0 + 10), (x0 + 16, x0 + 26), (x0 + 32, x1)]
            } else {
                &[(x0, x1)]
            };
            for &(a, b) in segments {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], style))?;
            }
            area.draw(&Text::new(*name, (tx, y), label.clone()))?;
            y += 26;
        }
        y += 14;
    }
    let mid = (x0 + x1) / 2;
    area.draw(&Circle::new((mid, y), 5, BLACK.filled()))?;
    area.draw(&Text::new(
        "closed loop, at achieved rps",
        (tx, y),
        label.clone(),
    ))?;
    y += 26;
    area.draw(&TriangleMarker::new((mid, y), 7, BLACK.filled()))?;
    area.draw(&Text::new(
        "open loop, at offered rate",
        (tx, y),
        label.clone(),
    ))?;
    y += 26;
    area.draw(&Circle::new((mid, y), 5, BLACK.stroke_width(2)))?;
    area.draw(&Text::new("hollow: echo floor", (tx, y), label))?;
    let width = area.dim_in_pixel().0 as i32;
    area.draw(&Rectangle::new(
        [(4, top - 24), (width - 12, y + 24)],
        BLACK.mix(0.4).stroke_width(1),
    ))?;
    Ok(())
}

fn p50_vs_agents(path: &Path, curve: &[&ScalingPoint]) -> anyhow::Result<()> {
    let ms = |s: &ScalingPoint| s.p50_us as f64 / 1e3;
    let first = curve[0];
    let target = SCALING_TARGET * ms(first);
    let (a_lo, a_hi) = min_max(curve.iter().map(|s| s.agents as f64));
    let (x_lo, x_hi) = (a_lo / 2.0, a_hi * 2.0);
    let (_, p_hi) = min_max(curve.iter().map(|s| ms(s)));
    let y_hi = p_hi.max(target) * 1.35;

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "RouteCall p50 (1 in flight) against agents logged in",
            text(24),
        )
        .margin(20)
        .x_label_area_size(64)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x_lo..x_hi)
                .log_scale()
                .with_key_points(curve.iter().map(|s| s.agents as f64).collect()),
            0.0..y_hi,
        )?;
    chart
        .configure_mesh()
        .x_desc("agents logged in (log scale)")
        .y_desc("RouteCall p50, ms")
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(text(16))
        .axis_desc_style(text(18))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    let blue = COLOURS[0];
    let red = COLOURS[3];
    let reference = format!(
        "{SCALING_TARGET} × p50 at {} agents = {}",
        first.agents,
        fmt_ms(target)
    );
    chart
        .draw_series(DashedLineSeries::new(
            [(x_lo, target), (x_hi, target)],
            12,
            8,
            red.stroke_width(2),
        ))?
        .label(format!("target: p50 ≤ {reference}"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], red.stroke_width(2)));
    chart.draw_series(std::iter::once(Text::new(
        reference,
        (x_lo * 1.1, target + y_hi * 0.012),
        anchored(text(15).color(&red), HPos::Left, VPos::Bottom),
    )))?;
    chart
        .draw_series(LineSeries::new(
            curve.iter().map(|s| (s.agents as f64, ms(s))),
            blue.stroke_width(3),
        ))?
        .label("RouteCall p50, 1 in flight")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], blue.stroke_width(3)));
    chart.draw_series(curve.iter().map(|s| {
        let ratio = ms(s) / ms(first);
        let note = if std::ptr::eq(*s, first) {
            fmt_ms(ms(s))
        } else {
            format!("{} (×{ratio:.2})", fmt_ms(ms(s)))
        };
        // Below a point under the target line, above one over it, so the
        // note never sits on the line.
        let (dy, v) = if ms(s) <= target {
            (14, VPos::Top)
        } else {
            (-14, VPos::Bottom)
        };
        EmptyElement::at((s.agents as f64, ms(s)))
            + Circle::new((0, 0), 6, blue.filled())
            + Text::new(note, (0, dy), anchored(text(15), HPos::Center, v))
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(text(16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stats(name: &str, mode: Mode, rps: f64, p50_us: u64) -> Stats {
        Stats {
            name: name.into(),
            mode,
            count: 1000,
            ok: 1000,
            errors: BTreeMap::new(),
            rps,
            p50_us,
            p90_us: p50_us * 2,
            p99_us: p50_us * 4,
            p999_us: p50_us * 8,
            max_us: p50_us * 10,
            mean_us: p50_us as f64,
            measured_s: 10.0,
            error_p99_us: 0,
        }
    }

    fn open(rate: f64) -> Mode {
        Mode::Open {
            rate,
            max_in_flight: 512,
        }
    }

    fn closed(in_flight: usize) -> Mode {
        Mode::Closed { in_flight }
    }

    /// The points of a full run, in the order main.rs produces them.
    fn points() -> Vec<Stats> {
        vec![
            stats("echo (bare tonic)", closed(1), 15_000.0, 66),
            stats("echo (bare tonic)", closed(32), 26_000.0, 440),
            stats("echo (bare tonic)", open(300.0), 300.0, 240),
            stats("RouteCall (100 agents)", closed(1), 352.0, 1_371),
            stats("RouteCall cycle (100 agents)", closed(32), 1_053.0, 11_159),
            stats(
                "RouteCall cycle at 2× saturation (100 agents)",
                open(2_106.0),
                2_104.0,
                22_735,
            ),
            stats("RouteCall (100 agents)", open(300.0), 300.0, 2_073),
            stats("GetProfile (500 profiles)", closed(1), 2_365.0, 410),
            stats(
                "RouteCall (100 agents, curve start)",
                closed(1),
                810.0,
                1_207,
            ),
            stats("RouteCall (1000 agents)", closed(1), 693.0, 1_395),
            stats(
                "RouteCall (10000 agents, 1000000 profiles)",
                open(1_000.0),
                1_000.0,
                1_346,
            ),
        ]
    }

    fn scaling() -> Vec<ScalingPoint> {
        [
            (100, 1_207),
            (1_000, 1_395),
            (10_000, 1_403),
            (100_000, 2_279),
        ]
        .into_iter()
        .map(|(agents, p50_us)| ScalingPoint {
            agents,
            p50_us,
            p99_us: p50_us * 3,
            rps: 1e6 / p50_us as f64,
        })
        .collect()
    }

    /// Asserts `path` is a PNG of `SIZE`, read from its IHDR chunk.
    fn assert_png_of_size(path: &Path) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        assert_eq!((be(16), be(20)), SIZE, "{}", path.display());
        // A blank canvas compresses to a few kB; axes, text and series do not.
        assert!(
            bytes.len() > 20_000,
            "{}: only {} bytes",
            path.display(),
            bytes.len()
        );
    }

    #[test]
    fn both_plots_are_pngs_of_the_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_plots_of(&points(), &scaling(), Some(100), dir.path()).expect("plots");
        assert_eq!(
            written,
            vec![
                dir.path().join(LATENCY_VS_LOAD),
                dir.path().join(P50_VS_AGENTS)
            ]
        );
        for path in &written {
            assert_png_of_size(path);
        }
    }

    #[test]
    fn without_scaling_data_there_is_no_agents_plot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(P50_VS_AGENTS);
        std::fs::write(&stale, b"from an earlier run").expect("write");
        let written = write_plots_of(&points(), &[], Some(100), dir.path()).expect("plots");
        assert_eq!(written, vec![dir.path().join(LATENCY_VS_LOAD)]);
        assert_png_of_size(&written[0]);
        assert!(
            !stale.exists(),
            "a stale {P50_VS_AGENTS} was left beside the report"
        );
    }

    #[test]
    fn without_route_points_there_is_no_latency_plot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let echo_only: Vec<Stats> = points()
            .into_iter()
            .filter(|p| p.name.starts_with("echo"))
            .collect();
        let written = write_plots_of(&echo_only, &scaling(), Some(100), dir.path()).expect("plots");
        assert_eq!(written, vec![dir.path().join(P50_VS_AGENTS)]);
        assert!(!dir.path().join(LATENCY_VS_LOAD).exists());
        let none = write_plots_of(&[], &[], None, dir.path()).expect("plots");
        assert!(none.is_empty());
        assert!(!dir.path().join(P50_VS_AGENTS).exists());
    }

    #[test]
    fn the_load_curve_is_the_route_scenario_at_its_agent_count() {
        let loads = |agents| {
            let (config, points) = route_points(&points(), agents);
            let loads: Vec<(f64, bool)> = points.iter().map(|p| (p.load, p.open)).collect();
            (config, loads)
        };
        // Open loop at the offered rate, closed loop at the achieved rps,
        // sorted by load; the scaling and million points left out.
        let expected = vec![
            (300.0, true),
            (352.0, false),
            (1_053.0, false),
            (2_106.0, true),
        ];
        assert_eq!(
            loads(Some(100)),
            ("100 agents".to_owned(), expected.clone())
        );
        assert_eq!(loads(None), ("100 agents".to_owned(), expected));
        assert_eq!(loads(Some(5)).1, vec![]);
        let (_, p) = route_points(&points(), Some(100));
        assert_eq!(p[1].ms, [1.371, 2.742, 5.484, 10.968]);
    }

    #[test]
    fn ticks_and_their_labels() {
        assert_eq!(
            ticks_125(0.04, 30.0),
            [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
        assert_eq!(ticks_125(150.0, 1_000.0), [200.0, 500.0, 1_000.0]);
        let labels: Vec<String> = [
            0.05, 0.2, 1.0, 20.0, 500.0, 1_000.0, 20_000.0, 100_000.0, 1e6,
        ]
        .map(short)
        .into();
        assert_eq!(
            labels,
            ["0.05", "0.2", "1", "20", "500", "1k", "20k", "100k", "1M"]
        );
    }
}
