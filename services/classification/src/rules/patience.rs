//! Patience: the longest this customer tolerates waiting, in seconds.
//!
//! Learned from the waits that preceded the customer's complaints or
//! hang-ups (`HistorySummary.waits_before_complaints`): if they complained
//! after waiting 34 s, their patience is below 34 s. With at least
//! `min_evidence` such waits within the lookback window, patience is
//! `factor × the shortest of them`, rounded down, kept within
//! `[floor_s, default_s]`. Without evidence it is `default_s` (about 90 s,
//! customers' real tolerance).
//!
//! The shortest wait is used rather than an average: the goal is to answer
//! before the customer gets upset again, and the shortest upsetting wait is
//! the best evidence of where that point is.

use chrono::{DateTime, TimeDelta, Utc};
use rapport_proto::{HistorySummary, WaitEvidence};

use super::{Reasoned, plural};
use crate::policy::PatiencePolicy;

/// Learns patience from the history summary (`None` for an unknown
/// caller). `now` anchors the lookback window.
pub fn patience(
    policy: &PatiencePolicy,
    summary: Option<&HistorySummary>,
    now: DateTime<Utc>,
) -> Reasoned<u32> {
    let default_s = policy.default_s;
    let evidence = Evidence::collect(policy, summary, now);
    let count = evidence.waits.len();
    let within = format!("in the last {} days", policy.lookback_days);

    if count == 0 {
        let ignored = evidence.ignored();
        let reason = if ignored.is_empty() {
            format!("no complaints or hang-ups after waiting on record; default {default_s} s")
        } else {
            format!(
                "no complaints or hang-ups after waiting {within} ({}); default {default_s} s",
                ignored.join(", ")
            )
        };
        return Reasoned::new(default_s, reason);
    }

    let needed = usize::try_from(policy.min_evidence).unwrap_or(usize::MAX);
    if count < needed {
        return Reasoned::new(
            default_s,
            format!(
                "only {} after waiting {within}, {needed} needed to learn patience; default {default_s} s",
                plural(count, "complaint/hang-up", "complaints/hang-ups"),
            ),
        );
    }

    // `waits` is non-empty here; the fallbacks only keep this panic-free.
    let shortest = evidence.waits.iter().copied().min().unwrap_or(default_s);
    let longest = evidence.waits.iter().copied().max().unwrap_or(default_s);
    // Float to int `as` saturates (and maps NaN to 0), so even a factor
    // outside the validated range cannot panic here.
    let scaled = (f64::from(shortest) * policy.factor).floor() as u32;
    // min/max rather than clamp: clamp panics if floor_s > default_s.
    let patience = scaled.max(policy.floor_s).min(default_s);

    let waits = if count == 1 {
        format!("a wait of {shortest} s")
    } else if shortest == longest {
        format!("waits of {shortest} s")
    } else {
        format!("waits of {shortest}–{longest} s")
    };
    let mut reason = format!(
        "patience {patience} s from {} after {waits}: {} × shortest wait {shortest} s",
        plural(count, "complaint/hang-up", "complaints/hang-ups"),
        policy.factor,
    );
    if scaled < patience {
        reason.push_str(&format!(", raised to the {} s floor", policy.floor_s));
    } else if scaled > patience {
        reason.push_str(&format!(", capped at the {default_s} s default"));
    }
    Reasoned::new(patience, reason)
}

/// The waits that count as evidence, and why others did not.
#[derive(Default)]
struct Evidence {
    waits: Vec<u32>,
    /// Before the lookback window.
    older: usize,
    /// Without a usable timestamp: their age cannot be checked against the
    /// window, and stale evidence would lower patience forever.
    undated: usize,
}

impl Evidence {
    fn collect(
        policy: &PatiencePolicy,
        summary: Option<&HistorySummary>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut evidence = Self::default();
        let Some(summary) = summary else {
            return evidence;
        };
        let cutoff = TimeDelta::try_days(i64::from(policy.lookback_days))
            .and_then(|window| now.checked_sub_signed(window));
        for item in &summary.waits_before_complaints {
            if !is_evidence(item) {
                continue;
            }
            let Some(at) = item.at.as_ref().and_then(super::timestamp) else {
                evidence.undated += 1;
                continue;
            };
            if cutoff.is_some_and(|cutoff| at < cutoff) {
                evidence.older += 1;
                continue;
            }
            evidence.waits.push(item.wait_s);
        }
        evidence
    }

    fn ignored(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        if self.older > 0 {
            ignored.push(format!("{} older ignored", self.older));
        }
        if self.undated > 0 {
            ignored.push(format!("{} undated ignored", self.undated));
        }
        ignored
    }
}

/// A wait is evidence of impatience only if the customer actually waited
/// and then complained or hung up. A complaint after no wait at all is
/// about something else.
fn is_evidence(item: &WaitEvidence) -> bool {
    item.wait_s > 0 && (item.complaint || item.abandoned)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::policy::{BUILTIN_POLICY, Policy};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
            .single()
            .expect("valid date")
    }

    fn wait(wait_s: u32, days_ago: i64) -> WaitEvidence {
        let at = now() - TimeDelta::days(days_ago);
        WaitEvidence {
            wait_s,
            complaint: true,
            abandoned: false,
            at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
        }
    }

    fn summary(waits: Vec<WaitEvidence>) -> HistorySummary {
        HistorySummary {
            waits_before_complaints: waits,
            ..HistorySummary::default()
        }
    }

    fn learn(policy: &Policy, waits: Vec<WaitEvidence>) -> Reasoned<u32> {
        patience(policy.patience(), Some(&summary(waits)), now())
    }

    fn builtin() -> Policy {
        Policy::builtin().expect("built-in policy")
    }

    #[test]
    fn the_reference_case_learns_a_patience_below_30_s() {
        let result = learn(&builtin(), vec![wait(45, 10), wait(38, 60), wait(34, 200)]);
        assert_eq!(result.value, 27);
        assert!(result.value < 30);
        assert_eq!(
            result.reason,
            "patience 27 s from 3 complaints/hang-ups after waits of 34–45 s: 0.8 × shortest wait 34 s"
        );
    }

    #[test]
    fn without_evidence_patience_is_the_default() {
        let policy = builtin();
        let result = patience(policy.patience(), None, now());
        assert_eq!(result.value, 90);
        assert_eq!(
            result.reason,
            "no complaints or hang-ups after waiting on record; default 90 s"
        );
        assert_eq!(learn(&policy, vec![]).value, 90);
    }

    #[test]
    fn hang_ups_count_but_waits_without_complaint_or_wait_do_not() {
        let policy = builtin();
        let hang_up = WaitEvidence {
            complaint: false,
            abandoned: true,
            ..wait(50, 1)
        };
        assert_eq!(learn(&policy, vec![hang_up]).value, 40);

        let neither = WaitEvidence {
            complaint: false,
            ..wait(20, 1)
        };
        let no_wait = wait(0, 1);
        assert_eq!(learn(&policy, vec![neither, no_wait]).value, 90);
    }

    #[test]
    fn only_evidence_within_the_lookback_window_counts() {
        let policy = builtin();
        let result = learn(&policy, vec![wait(20, 366), wait(60, 364)]);
        assert_eq!(result.value, 48);
        assert!(
            result.reason.contains("a wait of 60 s"),
            "{}",
            result.reason
        );

        let result = learn(&policy, vec![wait(20, 400)]);
        assert_eq!(result.value, 90);
        assert_eq!(
            result.reason,
            "no complaints or hang-ups after waiting in the last 365 days (1 older ignored); default 90 s"
        );

        let undated = WaitEvidence {
            at: None,
            ..wait(20, 0)
        };
        let result = learn(&policy, vec![undated]);
        assert_eq!(result.value, 90);
        assert!(result.reason.contains("1 undated ignored"));

        // Clock skew between services: slightly future evidence counts.
        assert_eq!(learn(&policy, vec![wait(40, -1)]).value, 32);
    }

    #[test]
    fn learned_patience_stays_between_floor_and_default() {
        let policy = builtin();
        let result = learn(&policy, vec![wait(5, 1)]);
        assert_eq!(result.value, 10);
        assert!(
            result.reason.ends_with("raised to the 10 s floor"),
            "{}",
            result.reason
        );

        let result = learn(&policy, vec![wait(600, 1), wait(300, 2)]);
        assert_eq!(result.value, 90);
        assert!(
            result.reason.ends_with("capped at the 90 s default"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn min_evidence_is_respected() {
        let policy = Policy::parse(&BUILTIN_POLICY.replace("min_evidence = 1", "min_evidence = 2"))
            .expect("valid");
        let result = learn(&policy, vec![wait(34, 1)]);
        assert_eq!(result.value, 90);
        assert_eq!(
            result.reason,
            "only 1 complaint/hang-up after waiting in the last 365 days, 2 needed to learn patience; default 90 s"
        );
        assert_eq!(learn(&policy, vec![wait(34, 1), wait(34, 2)]).value, 27);
        assert!(
            learn(&policy, vec![wait(34, 1), wait(34, 2)])
                .reason
                .contains("after waits of 34 s")
        );
    }
}
