//! Moment of truth: an emotionally charged contact that decides loyalty —
//! a card lost, a flight cancelled, a product failing when it is needed
//! most.
//!
//! Flagged from a recent event of a moment kind within its window before
//! `now` (the window is per kind in the policy; time is passed in, so tests
//! and replays are exact), from charged words in the text ("卡丢了",
//! "stranded"), or from a strong negative emotion. Event kinds the policy
//! does not know are ignored with a note in the reason, so a new upstream
//! kind is visible rather than silently dropped.

use chrono::{DateTime, TimeDelta, Utc};
use rapport_proto::{Emotion, EmotionResult, HistorySummary, MomentOfTruth};

use super::TextReading;
use crate::policy::Policy;

/// Events dated this far in the future still count (clock skew between
/// services); later ones are treated as malformed.
const FUTURE_SKEW: TimeDelta = TimeDelta::hours(1);

/// The moment of truth, and the category guidance files it under (the
/// event kind, or `moment_of_truth` for words and emotion).
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub result: MomentOfTruth,
    pub category: Option<String>,
}

pub fn moment(
    policy: &Policy,
    summary: Option<&HistorySummary>,
    reading: &TextReading,
    emotion: &EmotionResult,
    now: DateTime<Utc>,
) -> Moment {
    let p = policy.moment();
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    let mut category = None;

    for event in summary
        .map(|s| s.recent_events.as_slice())
        .unwrap_or_default()
    {
        let kind = event.kind.trim().to_lowercase();
        let Some(spec) = p.events.get(&kind) else {
            if !p.ordinary_events.contains(&kind) {
                notes.push(format!(
                    "unknown event kind {:?} ignored",
                    truncate(&event.kind)
                ));
            }
            continue;
        };
        let Some(at) = event.occurred_at.as_ref().and_then(super::timestamp) else {
            notes.push(format!("{kind} without a valid date ignored"));
            continue;
        };
        let age = now.signed_duration_since(at);
        let window = TimeDelta::hours(i64::from(spec.window_hours));
        if age > window {
            notes.push(format!(
                "{} {} ago, outside the {} h window",
                spec.label,
                human(age),
                spec.window_hours
            ));
        } else if age < -FUTURE_SKEW {
            notes.push(format!("{kind} dated in the future ignored"));
        } else {
            reasons.push(format!(
                "{} {} ago (within {} h)",
                spec.label,
                human(age.max(TimeDelta::zero())),
                spec.window_hours
            ));
            category.get_or_insert(kind);
        }
    }

    for hit in p.terms.find(&reading.chars) {
        let m = policy.text().context.modifiers(&reading.chars, hit.start);
        if m.negated {
            notes.push(format!("text \"{}\" negated", hit.term));
            continue;
        }
        let quoted = format!("text \"{}\"", hit.term);
        if !reasons.contains(&quoted) {
            reasons.push(quoted);
        }
    }

    let charged = matches!(
        emotion.emotion(),
        Emotion::Anxious | Emotion::Upset | Emotion::Angry
    );
    if charged && emotion.intensity >= p.min_intensity {
        reasons.push(format!(
            "{} at intensity {:.2} ≥ {:.2}",
            crate::model::emotion_name(emotion.emotion()),
            emotion.intensity,
            p.min_intensity
        ));
    }

    let flagged = !reasons.is_empty();
    if flagged && category.is_none() {
        category = Some("moment_of_truth".to_owned());
    }
    let mut reason = if flagged {
        reasons.join("; ")
    } else {
        "no recent moment-of-truth event, charged words or strong emotion".to_owned()
    };
    if !notes.is_empty() {
        reason.push_str(" (");
        reason.push_str(&notes.join("; "));
        reason.push(')');
    }
    Moment {
        result: MomentOfTruth { flagged, reason },
        category,
    }
}

/// An upstream value quoted in a reason, cut so a hostile value cannot
/// flood the evidence.
fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

/// `26 h`, `3 days`.
fn human(age: TimeDelta) -> String {
    let hours = age.num_hours();
    if hours < 48 {
        format!("{hours} h")
    } else {
        format!("{} days", age.num_days())
    }
}
