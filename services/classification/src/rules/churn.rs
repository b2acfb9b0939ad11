//! Churn risk: how likely this contact ends the relationship, in [0, 1].
//!
//! A capped sum of weighted signals — complaints on record, the emotion
//! now, a moment of truth, risk flags, and leaving words in the text
//! ("销户", "close my account") — because each is independent evidence an
//! operator can read and weigh; the reason lists what contributed.

use rapport_proto::{Emotion, EmotionResult, HistorySummary, RiskFlag};

use super::{Reasoned, TextReading};
use crate::policy::Policy;

/// Complaints beyond this many add nothing more.
const MAX_COMPLAINTS: u32 = 5;

pub fn churn(
    policy: &Policy,
    summary: Option<&HistorySummary>,
    reading: &TextReading,
    emotion: &EmotionResult,
    moment_flagged: bool,
    risks: &[RiskFlag],
) -> Reasoned<f64> {
    let p = policy.churn();
    let mut risk = p.base;
    let mut parts = vec![format!("base {:.2}", p.base)];

    if let Some(s) = summary
        && s.complaints_90d > 0
    {
        let n = s.complaints_90d.min(MAX_COMPLAINTS);
        risk += p.per_complaint * f64::from(n);
        parts.push(format!(
            "{} complaints in 90 days +{:.2}",
            s.complaints_90d,
            p.per_complaint * f64::from(n)
        ));
    }
    let by_emotion = match emotion.emotion() {
        Emotion::Angry => p.angry * emotion.intensity,
        Emotion::Upset => p.upset * emotion.intensity,
        _ => 0.0,
    };
    if by_emotion > 0.0 {
        risk += by_emotion;
        parts.push(format!(
            "{} at {:.2} +{by_emotion:.2}",
            crate::model::emotion_name(emotion.emotion()),
            emotion.intensity
        ));
    }
    if moment_flagged {
        risk += p.moment_of_truth;
        parts.push(format!("moment of truth +{:.2}", p.moment_of_truth));
    }
    if !risks.is_empty() {
        let add = p.per_risk_flag * risks.len() as f64;
        risk += add;
        parts.push(format!("{} risk flag(s) +{add:.2}", risks.len()));
    }
    let leaving: Vec<&str> = p
        .terms
        .find(&reading.chars)
        .into_iter()
        .filter(|hit| {
            !policy
                .text()
                .context
                .modifiers(&reading.chars, hit.start)
                .negated
        })
        .map(|hit| hit.term)
        .collect();
    if let Some(first) = leaving.first() {
        risk += p.terms_weight;
        parts.push(format!("text \"{first}\" +{:.2}", p.terms_weight));
    }
    let value = (risk.clamp(0.0, 1.0) * 100.0).round() / 100.0;
    Reasoned::new(
        value,
        format!("churn risk {value:.2}: {}", parts.join(", ")),
    )
}
