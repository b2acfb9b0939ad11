//! Inbound workload: the expected contacts per hour of week from contact
//! history, and Erlang C staffing for a target service level, so outbound
//! care calls can be planned into the troughs.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// Hours in a week; index `weekday_from_monday * 24 + hour`.
pub const HOURS_PER_WEEK: usize = 168;

/// Mean inbound contacts per local hour of week over `weeks` observed
/// weeks. Index 0 is Monday 00:00–01:00 in `tz`, index 167 Sunday
/// 23:00–24:00. The caller passes only the contacts of those weeks; zero
/// weeks gives all zeros rather than a division by zero.
///
/// Hours are local because inbound follows the customers' day: a Monday
/// morning peak stays a Monday morning peak across a DST change. The hour
/// repeated when clocks fall back therefore counts twice, and the hour
/// skipped in spring gets nothing that week, as it did in reality.
pub fn hour_of_week_forecast(
    contacts: impl Iterator<Item = DateTime<Utc>>,
    tz: Tz,
    weeks: u32,
) -> [f64; HOURS_PER_WEEK] {
    let mut counts = [0u64; HOURS_PER_WEEK];
    for at in contacts {
        counts[hour_of_week(at, tz)] += 1;
    }
    let mut mean = [0.0; HOURS_PER_WEEK];
    if weeks == 0 {
        return mean;
    }
    for (m, c) in mean.iter_mut().zip(counts) {
        *m = c as f64 / f64::from(weeks);
    }
    mean
}

/// The hour-of-week index of an instant in a zone.
pub fn hour_of_week(at: DateTime<Utc>, tz: Tz) -> usize {
    let local = at.with_timezone(&tz);
    local.weekday().num_days_from_monday() as usize * 24 + local.hour() as usize
}

/// Strictly positive and not NaN: NaN fails every comparison, so this
/// also keeps NaN input out of the arithmetic below.
fn is_positive(x: f64) -> bool {
    x > 0.0
}

/// Offered load in Erlangs: arrivals per second times the mean handle time.
fn load(arrivals_per_hour: f64, mean_handle_s: f64) -> f64 {
    arrivals_per_hour / 3600.0 * mean_handle_s
}

/// Erlang C: the probability that a contact waits, with `agents` agents
/// and `load` Erlangs offered. Computed from Erlang B by its recurrence
/// `B(0) = 1, B(n) = A·B(n−1) / (n + A·B(n−1))`, which never forms the
/// huge powers and factorials of the textbook formula and so stays exact
/// for hundreds of agents; then `C = N·B / (N − A·(1 − B))`. With no more
/// agents than load the queue grows without bound and every contact waits.
pub fn erlang_c_wait_probability(load: f64, agents: u32) -> f64 {
    if !is_positive(load) {
        return 0.0;
    }
    let n = f64::from(agents);
    if n <= load {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=agents {
        let ab = load * b;
        b = ab / (f64::from(k) + ab);
    }
    n * b / (n - load * (1.0 - b))
}

/// The fraction of contacts answered within `target_answer_s` with
/// `agents` agents: `1 − C·e^(−(N−A)·t/AHT)`. Zero load is fully served;
/// an overloaded or unstaffed queue serves nobody in time.
pub fn erlang_c_service_level(
    arrivals_per_hour: f64,
    mean_handle_s: f64,
    agents: u32,
    target_answer_s: f64,
) -> f64 {
    let a = load(arrivals_per_hour, mean_handle_s);
    if !is_positive(a) || !is_positive(mean_handle_s) {
        return 1.0;
    }
    let n = f64::from(agents);
    if n <= a {
        return 0.0;
    }
    let c = erlang_c_wait_probability(a, agents);
    let t = target_answer_s.max(0.0);
    (1.0 - c * (-(n - a) * t / mean_handle_s).exp()).clamp(0.0, 1.0)
}

/// The smallest number of agents whose service level reaches
/// `target_service_level` (a fraction) within `target_answer_s`. No load
/// needs no agents. Targets are clamped below 1 (no finite staff answers
/// every contact instantly), and a target of 0 still needs enough agents
/// to keep the queue stable.
pub fn erlang_c_agents(
    arrivals_per_hour: f64,
    mean_handle_s: f64,
    target_service_level: f64,
    target_answer_s: f64,
) -> u32 {
    let a = load(arrivals_per_hour, mean_handle_s);
    if !is_positive(a) || !a.is_finite() || !is_positive(mean_handle_s) {
        return 0;
    }
    let target = if target_service_level.is_nan() {
        0.0
    } else {
        target_service_level.clamp(0.0, 0.999_999)
    };
    // The least stable staffing; the answer is at most a few standard
    // deviations (√A) above the load, so the bound below is never reached
    // for sane input and keeps absurd input from looping for ever.
    let first = a.floor() as u64 + 1;
    let limit = first + 100 + (20.0 * a.sqrt()) as u64;
    let limit = limit.min(u64::from(u32::MAX)) as u32;
    let mut agents = first.min(u64::from(limit)) as u32;
    while agents < limit
        && erlang_c_service_level(arrivals_per_hour, mean_handle_s, agents, target_answer_s)
            < target
    {
        agents += 1;
    }
    agents
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The textbook formula, for cross-checking the recurrence on small
    /// numbers where powers and factorials are still exact in f64:
    /// `C = (A^N/N! · N/(N−A)) / (Σ_{k<N} A^k/k! + A^N/N! · N/(N−A))`.
    fn textbook_c(a: f64, n: u32) -> f64 {
        let mut term = 1.0; // A^k / k!
        let mut sum = 0.0;
        for k in 0..n {
            sum += term;
            term *= a / f64::from(k + 1);
        }
        let top = term * f64::from(n) / (f64::from(n) - a);
        top / (sum + top)
    }

    #[test]
    fn the_recurrence_agrees_with_the_textbook_formula() {
        for (a, n) in [
            (1.0, 2),
            (2.5, 3),
            (10.0, 13),
            (10.0, 20),
            (24.0, 30),
            (50.0, 60),
        ] {
            let c = erlang_c_wait_probability(a, n);
            assert!(close(c, textbook_c(a, n), 1e-12), "A={a} N={n}: {c}");
        }
    }

    #[test]
    fn the_classic_example_needs_14_agents() {
        // 100 calls per 30 minutes = 200 per hour, 180 s handle time:
        // A = 200 · 180 / 3600 = 10 Erlangs. Derived by hand with the
        // textbook formula: C(10, 13) = 0.2853, so 13 agents answer
        // 1 − 0.2853·e^(−3·20/180) = 79.56 % within 20 s, just short of
        // 80 %; C(10, 14) = 0.1741 gives 1 − 0.1741·e^(−4/9) = 88.84 %.
        // The widely published answer for this example is 14 agents.
        let sl13 = erlang_c_service_level(200.0, 180.0, 13, 20.0);
        let sl14 = erlang_c_service_level(200.0, 180.0, 14, 20.0);
        assert!(close(erlang_c_wait_probability(10.0, 13), 0.2853, 1e-4));
        assert!(close(sl13, 0.7956, 1e-4), "{sl13}");
        assert!(close(sl14, 0.8884, 1e-4), "{sl14}");
        assert_eq!(erlang_c_agents(200.0, 180.0, 0.8, 20.0), 14);
    }

    #[test]
    fn a_second_hand_derived_example() {
        // 360 calls per hour at 240 s: A = 24 Erlangs. By the textbook
        // formula C(24, 28) = 0.3331 → SL 76.13 %, C(24, 29) = 0.2423 →
        // SL 1 − 0.2423·e^(−5·20/240) = 84.03 %: 29 agents for 80/20.
        assert!(close(erlang_c_wait_probability(24.0, 29), 0.2423, 1e-4));
        assert_eq!(erlang_c_agents(360.0, 240.0, 0.8, 20.0), 29);
        // A stricter target needs more agents, never fewer.
        assert!(erlang_c_agents(360.0, 240.0, 0.95, 20.0) > 29);
    }

    #[test]
    fn edge_loads() {
        assert_eq!(erlang_c_agents(0.0, 180.0, 0.8, 20.0), 0);
        assert_eq!(erlang_c_agents(100.0, 0.0, 0.8, 20.0), 0);
        assert_eq!(erlang_c_agents(f64::NAN, 180.0, 0.8, 20.0), 0);
        assert_eq!(erlang_c_service_level(0.0, 180.0, 0, 20.0), 1.0);
        // Not more agents than Erlangs: nobody is answered in time.
        assert_eq!(erlang_c_service_level(200.0, 180.0, 10, 20.0), 0.0);
        assert_eq!(erlang_c_wait_probability(10.0, 10), 1.0);
        // A target of 0 still needs a stable queue; 1 is clamped.
        assert_eq!(erlang_c_agents(200.0, 180.0, 0.0, 20.0), 11);
        let n = erlang_c_agents(200.0, 180.0, 1.0, 20.0);
        assert!((14..60).contains(&n), "{n}");
        // Large centers stay finite and sensible (A = 1000).
        let n = erlang_c_agents(20_000.0, 180.0, 0.8, 20.0);
        assert!((1000..1100).contains(&n), "{n}");
    }

    #[test]
    fn the_forecast_is_the_mean_per_local_hour_of_week() {
        let tz: Tz = "Asia/Shanghai".parse().expect("zone");
        // Monday 2026-03-02 09:30 Shanghai = 01:30 UTC, in two weeks;
        // and one contact Sunday 23:10 local.
        let mon = tz.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap().to_utc();
        let contacts = vec![
            mon,
            mon + chrono::Duration::minutes(10),
            mon + chrono::Duration::weeks(1),
            tz.with_ymd_and_hms(2026, 3, 8, 23, 10, 0).unwrap().to_utc(),
        ];
        let f = hour_of_week_forecast(contacts.into_iter(), tz, 2);
        assert_eq!(f[9], 1.5);
        assert_eq!(f[167], 0.5);
        assert_eq!(f.iter().sum::<f64>(), 2.0);
        assert_eq!(
            hour_of_week_forecast(std::iter::once(mon), tz, 0),
            [0.0; 168]
        );
    }

    #[test]
    fn forecast_hours_follow_local_time_across_dst() {
        let tz: Tz = "America/New_York".parse().expect("zone");
        // 09:00 local before (EST, 14:00 UTC) and after (EDT, 13:00 UTC)
        // the 2026-03-08 change both land in Monday 09:00.
        let before = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 3, 9, 13, 0, 0).unwrap();
        assert_eq!(hour_of_week(before, tz), 9);
        assert_eq!(hour_of_week(after, tz), 9);
    }
}
