//! Emotion: calm, anxious, upset or angry, with an intensity in [0, 1] and
//! the words that show it.
//!
//! Lexicon terms count with the degree words in front of them ("非常失望",
//! "extremely upset") and flip with negation: a negated emotion word counts
//! toward calm ("不是很生气", "not angry at all"), a negated calm word
//! toward upset ("not happy"). The learned model adds its probabilities.
//! Without text there is nothing to read: the emotion is unspecified and
//! says so, rather than guessing from history.

use rapport_proto::{Emotion, EmotionResult};

use super::TextReading;
use crate::model::{EMOTIONS, emotion_name};
use crate::policy::Policy;

/// Intensity of the strongest emotion before any evidence.
const BASE_INTENSITY: f64 = 0.3;

pub fn emotion(policy: &Policy, reading: &TextReading) -> EmotionResult {
    if !reading.has_words {
        return EmotionResult {
            emotion: Emotion::Unspecified.into(),
            intensity: 0.0,
            evidence: vec!["no text to read emotion from".to_owned()],
        };
    }
    let p = policy.emotion();
    let index = |e: Emotion| EMOTIONS.iter().position(|&x| x == e);
    let calm = index(Emotion::Calm).unwrap_or(0);
    let upset = index(Emotion::Upset).unwrap_or(2);

    let mut raw = [0.0f64; 4];
    let mut evidence: Vec<String> = Vec::new();
    for hit in p.terms.find(&reading.chars) {
        let (emotion, weight) = *hit.value;
        let Some(i) = index(emotion) else { continue };
        let m = policy.text().context.modifiers(&reading.chars, hit.start);
        if m.negated {
            // "not angry" leans calm; "not happy" leans upset.
            let to = if i == calm { upset } else { calm };
            raw[to] += weight * p.negated_to_calm;
            evidence.push(format!(
                "text \"{}\" negated by {} → {}",
                hit.term,
                m.cues.join(", "),
                emotion_name(EMOTIONS[to])
            ));
        } else {
            raw[i] += weight * m.degree;
            if m.cues.is_empty() {
                evidence.push(format!("text \"{}\" → {}", hit.term, emotion_name(emotion)));
            } else {
                evidence.push(format!(
                    "text \"{}\" × {:.1} ({}) → {}",
                    hit.term,
                    m.degree,
                    m.cues.join(", "),
                    emotion_name(emotion)
                ));
            }
        }
    }

    // Politeness is not calm when distress is also in the text ("谢谢，我的
    // 卡被盗刷了，我非常着急"): calm words then count half.
    if raw.iter().enumerate().any(|(i, &r)| i != calm && r > 0.0) {
        raw[calm] *= 0.5;
    }
    let angry = index(Emotion::Angry).unwrap_or(3);
    let marks = reading.exclamations.min(2);
    if marks > 0 && raw[angry] + raw[upset] > 0.0 && p.exclamation_anger > 0.0 {
        raw[angry] += p.exclamation_anger * marks as f64;
        evidence.push(format!(
            "{marks} exclamation mark(s) with a complaint → angry"
        ));
    }

    let total_raw: f64 = raw.iter().sum::<f64>().max(1.0);
    let mut combined = [0.0f64; 4];
    for i in 0..4 {
        combined[i] = p.rules_weight * raw[i] / total_raw;
    }
    let model = reading.prediction.emotion;
    if let Some(probabilities) = &model {
        for (c, pr) in combined.iter_mut().zip(probabilities) {
            *c += p.model_weight * pr;
        }
    }
    if combined.iter().all(|&c| c <= 0.0) {
        return EmotionResult {
            emotion: Emotion::Calm.into(),
            intensity: BASE_INTENSITY,
            evidence: vec!["no emotion words found".to_owned()],
        };
    }
    let (winner, _) =
        combined
            .iter()
            .enumerate()
            .fold((calm, f64::NEG_INFINITY), |best, (i, &c)| {
                if c > best.1 { (i, c) } else { best }
            });
    if let Some(probabilities) = &model {
        evidence.push(format!(
            "text model p({})={:.2}",
            emotion_name(EMOTIONS[winner]),
            probabilities[winner]
        ));
    }

    let mut intensity =
        BASE_INTENSITY + 0.3 * raw[winner].min(2.0) + 0.2 * model.map_or(0.0, |m| m[winner]);
    if winner != calm {
        let marks = reading.exclamations.min(3);
        if marks > 0 {
            intensity += p.exclamation_boost * marks as f64;
            evidence.push(format!("{marks} exclamation mark(s)"));
        }
        if reading.shouting {
            intensity += p.exclamation_boost;
            evidence.push("written in capitals".to_owned());
        }
    }
    EmotionResult {
        emotion: EMOTIONS[winner].into(),
        intensity: (intensity.clamp(0.0, 1.0) * 100.0).round() / 100.0,
        evidence,
    }
}
