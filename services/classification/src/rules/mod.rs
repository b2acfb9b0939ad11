//! The classification rules. Each rule is a pure function of the policy and
//! the request that returns its conclusion with a reason an operator (or an
//! agent on the screen pop) can read and check against the policy file.
//!
//! One module per rule keeps them independently testable. The rules that
//! read text share one [`TextReading`] (normalized characters and the
//! model's prediction), computed once per classification; where several
//! findings combine, a rule returns an evidence list instead of one reason.

pub mod churn;
pub mod emotion;
pub mod guidance;
pub mod language;
pub mod moment;
pub mod needs;
pub mod patience;
pub mod risk;
pub mod tier;

use crate::model::Prediction;
use crate::policy::Policy;
use crate::text;

/// The contact's text as the rules read it, computed once.
#[derive(Debug, Clone)]
pub struct TextReading {
    /// Normalized characters ([`text::normalize`]).
    pub chars: Vec<char>,
    /// The learned model's reading.
    pub prediction: Prediction,
    /// `!` marks, which raise the intensity of a negative emotion.
    pub exclamations: usize,
    /// Written mostly in capitals (English shouting).
    pub shouting: bool,
    /// Any letter or Chinese character at all.
    pub has_words: bool,
}

impl TextReading {
    pub fn new(policy: &Policy, raw: &str) -> Self {
        let chars = text::normalize(raw);
        let has_words = chars.iter().any(|&c| c.is_alphanumeric());
        let prediction = if has_words {
            policy.model().predict(&text::model_features(&chars))
        } else {
            Prediction {
                needs: None,
                emotion: None,
            }
        };
        let exclamations = chars.iter().filter(|&&c| c == '!').count();
        Self {
            chars,
            prediction,
            exclamations,
            shouting: shouting(raw),
            has_words,
        }
    }
}

/// At least three words of three or more Latin letters, and most of them in
/// capitals.
fn shouting(raw: &str) -> bool {
    let words: Vec<&str> = raw
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .collect();
    let upper = words
        .iter()
        .filter(|w| w.bytes().all(|b| b.is_ascii_uppercase()))
        .count();
    upper >= 3 && upper * 3 >= words.len() * 2
}

/// A rule's conclusion and why it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoned<T> {
    pub value: T,
    pub reason: String,
}

impl<T> Reasoned<T> {
    pub(crate) fn new(value: T, reason: impl Into<String>) -> Self {
        Self {
            value,
            reason: reason.into(),
        }
    }
}

/// An amount with thousands separators, as operators write them:
/// `8000000` → `8,000,000`.
pub(crate) fn amount(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A protobuf timestamp as a UTC time, or `None` when it is out of range
/// or malformed (such values are ignored, never trusted or panicked on).
pub(crate) fn timestamp(ts: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|&n| n < 1_000_000_000)?;
    chrono::DateTime::from_timestamp(ts.seconds, nanos)
}

/// `1 complaint` / `3 complaints`.
pub(crate) fn plural(count: usize, singular: &str, plural: &str) -> String {
    if count == 1 {
        format!("{count} {singular}")
    } else {
        format!("{count} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(amount(0), "0");
        assert_eq!(amount(999), "999");
        assert_eq!(amount(1_000), "1,000");
        assert_eq!(amount(8_000_000), "8,000,000");
        assert_eq!(amount(-12_345), "-12,345");
        assert_eq!(amount(i64::MIN), "-9,223,372,036,854,775,808");
    }
}
