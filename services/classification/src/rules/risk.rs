//! Risk flags (DESIGN.md §3): the patterns of "spoiled" customer behaviour
//! and the crises they cause, each with the evidence that raised it.
//!
//! - escalation threat: regulators, consumer-protection bodies, media,
//!   lawyers, public posts named in the text, or threats on record;
//! - solutions exhausted: offered solutions rejected (history or text);
//! - compensation seeking: compensation asked in many recent contacts, or
//!   coupons-to-cash demands in the text;
//! - rule disregard: the text dismisses the terms or cites an online guide;
//! - repeat caller, long-call cost, public influence: from the history and
//!   the profile.
//!
//! A negated threat still counts: "我不想闹到银保监会" names the regulator
//! precisely to apply pressure, which is the signal. Other negated terms
//! ("I did read the terms, I didn't ignore them") do not raise a flag.

use rapport_proto::{Customer, HistorySummary, RiskFlag, RiskKind};

use super::TextReading;
use crate::policy::{Policy, RISK_KINDS};

pub fn risks(
    policy: &Policy,
    customer: Option<&Customer>,
    summary: Option<&HistorySummary>,
    reading: &TextReading,
) -> Vec<RiskFlag> {
    let p = policy.risk();
    let mut evidence: Vec<Vec<String>> = vec![Vec::new(); RISK_KINDS.len()];
    let mut add = |kind: RiskKind, what: String| {
        if let Some(i) = RISK_KINDS.iter().position(|&k| k == kind)
            && !evidence[i].contains(&what)
        {
            evidence[i].push(what);
        }
    };

    for hit in p.terms.find(&reading.chars) {
        let kind = *hit.value;
        let m = policy.text().context.modifiers(&reading.chars, hit.start);
        if m.negated {
            if kind == RiskKind::EscalationThreat {
                add(
                    kind,
                    format!("text \"{}\" (veiled: mentioned while negated)", hit.term),
                );
            }
            continue;
        }
        add(kind, format!("text \"{}\"", hit.term));
    }

    if let Some(s) = summary {
        if s.escalation_threats_90d >= p.escalation_history_min {
            add(
                RiskKind::EscalationThreat,
                format!(
                    "{} on record in 90 days",
                    super::plural(
                        s.escalation_threats_90d as usize,
                        "escalation threat",
                        "escalation threats"
                    )
                ),
            );
        }
        // The summary's count, or the recent contacts where every offered
        // solution was turned down, whichever shows more.
        let rejected_recent: u32 = s
            .recent_contacts
            .iter()
            .filter(|c| c.solutions_offered > 0)
            .map(|c| c.solutions_rejected.min(c.solutions_offered))
            .sum();
        let all_rejected = s
            .recent_contacts
            .iter()
            .filter(|c| c.solutions_offered > 0 && c.solutions_rejected >= c.solutions_offered)
            .count();
        let rejected = s.solutions_rejected_90d.max(rejected_recent);
        if rejected >= p.min_rejected_90d {
            let mut what = format!(
                "{} rejected in 90 days (≥ {})",
                super::plural(rejected as usize, "offered solution", "offered solutions"),
                p.min_rejected_90d
            );
            if all_rejected > 0 {
                what.push_str(&format!(
                    "; every solution rejected in {}",
                    super::plural(all_rejected, "recent contact", "recent contacts")
                ));
            }
            add(RiskKind::SolutionsExhausted, what);
        }
        if s.compensation_asked_90d >= p.min_compensation_asked_90d {
            add(
                RiskKind::CompensationSeeking,
                format!(
                    "asked for compensation in {} in 90 days (≥ {})",
                    super::plural(s.compensation_asked_90d as usize, "contact", "contacts"),
                    p.min_compensation_asked_90d
                ),
            );
        }
        if s.contacts_7d >= p.min_contacts_7d {
            add(
                RiskKind::RepeatCaller,
                format!(
                    "{} contacts in 7 days (≥ {})",
                    s.contacts_7d, p.min_contacts_7d
                ),
            );
        }
        if s.mean_handle_s_90d >= p.min_mean_handle_s && s.contacts_30d >= p.min_contacts_30d {
            add(
                RiskKind::LongCallCost,
                format!(
                    "mean handle {} s over 90 days (≥ {} s) with {} contacts in 30 days",
                    s.mean_handle_s_90d, p.min_mean_handle_s, s.contacts_30d
                ),
            );
        }
    }

    if let Some(influence) = customer.and_then(|c| c.public_influence.as_ref()) {
        if influence.social_followers >= p.min_followers {
            add(
                RiskKind::PublicInfluence,
                format!(
                    "{} social followers (≥ {})",
                    super::amount(i64::try_from(influence.social_followers).unwrap_or(i64::MAX)),
                    super::amount(i64::try_from(p.min_followers).unwrap_or(i64::MAX))
                ),
            );
        }
        if influence.media_presence {
            add(RiskKind::PublicInfluence, "known to the media".to_owned());
        }
    }

    RISK_KINDS
        .iter()
        .zip(evidence)
        .filter(|(_, e)| !e.is_empty())
        .map(|(&kind, evidence)| RiskFlag {
            kind: kind.into(),
            evidence,
        })
        .collect()
}
