//! Needs: how much this customer wants recognition, soothing,
//! compensation, improvement measures, a concrete plan, or just to talk —
//! weighted, with the primary one and the evidence for each.
//!
//! Four sources add up, each scaled by its policy weight: the needs CRM
//! staff declared on the profile, the history (complaints → soothing,
//! compensation requests → compensation, rejected solutions and repeat
//! contacts → a concrete plan, escalation threats → improvement measures,
//! a long silence → just talk), lexicon terms in the text (negated terms
//! do not count: "不要赔偿" is not a compensation need) and the learned
//! model. Weights are shares of the total, so they compare across
//! customers; needs under `min_share` are left out as noise.

use chrono::{DateTime, Utc};
use rapport_proto::{Customer, HistorySummary, Need, NeedScore};

use super::TextReading;
use crate::model::{NEEDS, need_name};
use crate::policy::Policy;

/// The needs, highest first, and the primary one (`Unspecified` when
/// nothing at all points to a need).
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    pub scores: Vec<NeedScore>,
    pub primary: Need,
}

/// Most text evidence strings kept per need; more add nothing on a screen.
const MAX_TERMS_PER_NEED: usize = 4;

pub fn needs(
    policy: &Policy,
    customer: Option<&Customer>,
    summary: Option<&HistorySummary>,
    reading: &TextReading,
    now: DateTime<Utc>,
) -> Needs {
    let p = policy.needs();
    let mut score = [0.0f64; 6];
    let mut evidence: [Vec<String>; 6] = Default::default();
    let index = |need: Need| NEEDS.iter().position(|&n| n == need);

    // Declared by CRM staff.
    if let Some(customer) = customer {
        for declared in &customer.declared_needs {
            let Some(i) = Need::try_from(declared.need).ok().and_then(index) else {
                continue;
            };
            let w = if declared.weight.is_finite() {
                declared.weight.clamp(0.0, 1.0)
            } else {
                0.0
            };
            if w > 0.0 {
                score[i] += p.declared_weight * w;
                evidence[i].push(format!("declared on the profile with weight {w:.2}"));
            }
        }
    }

    // History.
    if let Some(s) = summary {
        let h = &p.history;
        let mut add = |need: Need, count: u32, per: f64, what: String| {
            if count == 0 || per <= 0.0 {
                return;
            }
            if let Some(i) = index(need) {
                score[i] += p.history_weight * (f64::from(count) * per).min(1.0);
                evidence[i].push(what);
            }
        };
        add(
            Need::Soothing,
            s.complaints_90d,
            h.per_complaint,
            format!(
                "{} in 90 days",
                super::plural(s.complaints_90d as usize, "complaint", "complaints")
            ),
        );
        add(
            Need::Compensation,
            s.compensation_asked_90d,
            h.per_compensation_ask,
            format!(
                "asked for compensation {} in 90 days",
                super::plural(s.compensation_asked_90d as usize, "time", "times")
            ),
        );
        add(
            Need::ImprovementMeasures,
            s.escalation_threats_90d,
            h.per_escalation_threat,
            format!(
                "{} in 90 days",
                super::plural(
                    s.escalation_threats_90d as usize,
                    "escalation threat",
                    "escalation threats"
                )
            ),
        );
        add(
            Need::ConcretePlan,
            s.solutions_rejected_90d,
            h.per_rejected_solution,
            format!(
                "{} rejected in 90 days",
                super::plural(
                    s.solutions_rejected_90d as usize,
                    "offered solution",
                    "offered solutions"
                )
            ),
        );
        let repeats = s.contacts_7d.saturating_sub(1);
        add(
            Need::ConcretePlan,
            repeats,
            h.per_repeat_contact,
            format!(
                "{} contacts in 7 days: the matter is still open",
                s.contacts_7d
            ),
        );
        let silent_days = s
            .last_contact_at
            .as_ref()
            .and_then(super::timestamp)
            .map(|at| (now - at).num_days());
        if let Some(days) = silent_days
            && s.total_contacts > 0
            && days >= i64::from(h.silence_days)
        {
            add(
                Need::JustTalk,
                1,
                h.silence_weight,
                format!("no contact for {days} days"),
            );
        }
    }

    // Lexicon terms in the text.
    let mut raw = [0.0f64; 6];
    for hit in p.terms.find(&reading.chars) {
        let (need, weight) = *hit.value;
        let Some(i) = index(need) else { continue };
        let modifiers = policy.text().context.modifiers(&reading.chars, hit.start);
        if modifiers.negated {
            if evidence[i].len() < MAX_TERMS_PER_NEED + 2 {
                evidence[i].push(format!(
                    "text \"{}\" ignored: negated by {}",
                    hit.term,
                    modifiers.cues.join(", ")
                ));
            }
            continue;
        }
        raw[i] += weight * modifiers.degree;
        let quoted = format!("text \"{}\"", hit.term);
        if evidence[i].len() < MAX_TERMS_PER_NEED + 2 && !evidence[i].contains(&quoted) {
            evidence[i].push(quoted);
        }
    }
    // Shares of the matched weight, so one clear term counts fully and
    // mixed terms split; a long text with many terms does not outweigh the
    // other sources.
    let total_raw: f64 = raw.iter().sum::<f64>().max(1.0);
    for i in 0..6 {
        score[i] += p.rules_weight * raw[i] / total_raw;
    }

    // The model.
    if let Some(probabilities) = &reading.prediction.needs {
        for (i, &pr) in probabilities.iter().enumerate() {
            score[i] += p.model_weight * pr;
            if pr >= 0.2 {
                evidence[i].push(format!("text model p={pr:.2}"));
            }
        }
    }

    let total: f64 = score.iter().sum();
    // NaN cannot occur (inputs are clamped), but is treated as "nothing".
    if total.is_nan() || total <= 0.0 {
        return Needs {
            scores: Vec::new(),
            primary: Need::Unspecified,
        };
    }
    let mut scores: Vec<NeedScore> = NEEDS
        .iter()
        .zip(score)
        .zip(evidence)
        .filter_map(|((&need, s), evidence)| {
            let share = s / total;
            (share >= p.min_share && share > 0.0).then(|| NeedScore {
                need: need.into(),
                weight: (share * 1000.0).round() / 1000.0,
                evidence: if evidence.is_empty() {
                    vec![format!(
                        "{} share of the combined evidence",
                        need_name(need)
                    )]
                } else {
                    evidence
                },
            })
        })
        .collect();
    // Stable: ties keep the need order of the model.
    scores.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let primary = scores.first().map_or(Need::Unspecified, |s| s.need());
    Needs { scores, primary }
}
