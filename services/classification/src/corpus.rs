//! The labelled corpus the text model learns from and is measured on:
//! `data/classification/corpus.tsv`, one message a line —
//! `id<TAB>channel<TAB>need<TAB>emotion<TAB>text` — in Chinese and English.
//!
//! The split is deterministic and stratified by need: within each need,
//! examples are ordered by a hash of their id and every fifth is held out.
//! Held-out examples are never trained on, and [`near_duplicates`] checks
//! that none is a near copy of a training example (character-trigram
//! Jaccard similarity), so the evaluation measures generalization rather
//! than recall of the training set.

use std::collections::HashSet;
use std::fmt::Write as _;

use rapport_proto::{ClassifyRequest, Emotion, Need};

use crate::model::{EMOTIONS, NEEDS, emotion_name, need_name};
use crate::policy::Policy;
use crate::text;

/// Where the corpus lives in the repository.
pub fn default_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/classification/corpus.tsv")
}

/// Where `make train` writes the model (and the binary embeds it from).
pub fn default_model_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/classification/model.json")
}

/// Similarity at or above which two messages count as near-duplicates.
pub const NEAR_DUPLICATE: f64 = 0.6;

/// One labelled message.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    pub channel: String,
    pub need: Need,
    pub emotion: Emotion,
    pub text: String,
    pub held_out: bool,
}

/// A corpus line that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("corpus line {line}: {problem}")]
pub struct CorpusError {
    pub line: usize,
    pub problem: String,
}

const CHANNELS: [&str; 5] = ["chat", "email", "social", "voice", "sms"];

/// Parses the corpus and assigns the split.
pub fn parse(source: &str) -> Result<Vec<Example>, CorpusError> {
    let mut examples = Vec::new();
    let mut ids = HashSet::new();
    for (n, line) in source.lines().enumerate() {
        let line_no = n + 1;
        let err = |problem: String| CorpusError {
            line: line_no,
            problem,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, channel, need, emotion, text] = fields[..] else {
            return Err(err(format!(
                "expected 5 tab-separated fields, got {}",
                fields.len()
            )));
        };
        if id == "id" {
            continue; // header
        }
        if !ids.insert(id.to_owned()) {
            return Err(err(format!("id {id} is repeated")));
        }
        if !CHANNELS.contains(&channel) {
            return Err(err(format!("unknown channel {channel:?}")));
        }
        let need = NEEDS
            .iter()
            .copied()
            .find(|&n| need_name(n) == need)
            .ok_or_else(|| err(format!("unknown need {need:?}")))?;
        let emotion = EMOTIONS
            .iter()
            .copied()
            .find(|&e| emotion_name(e) == emotion)
            .ok_or_else(|| err(format!("unknown emotion {emotion:?}")))?;
        if text.trim().is_empty() {
            return Err(err("empty text".to_owned()));
        }
        examples.push(Example {
            id: id.to_owned(),
            channel: channel.to_owned(),
            need,
            emotion,
            text: text.to_owned(),
            held_out: false,
        });
    }
    for need in NEEDS {
        let mut of_need: Vec<&mut Example> =
            examples.iter_mut().filter(|e| e.need == need).collect();
        of_need.sort_by_key(|e| fnv1a(e.id.as_bytes()));
        for (i, e) in of_need.into_iter().enumerate() {
            e.held_out = i % 5 == 0;
        }
    }
    Ok(examples)
}

/// FNV-1a, 64 bit: a stable hash for the split and the corpus digest (the
/// standard library's hasher is randomized per process).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The digest recorded in the model, tying it to the corpus it learned.
pub fn digest(source: &str) -> String {
    format!("fnv1a:{:016x}", fnv1a(source.as_bytes()))
}

fn trigrams(text: &str) -> HashSet<[char; 3]> {
    let chars: Vec<char> = text::normalize(text)
        .into_iter()
        .filter(|c| c.is_alphanumeric())
        .collect();
    chars.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
}

fn jaccard(a: &HashSet<[char; 3]>, b: &HashSet<[char; 3]>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Pairs (held-out id, training id, similarity) at or above `threshold`.
pub fn near_duplicates(examples: &[Example], threshold: f64) -> Vec<(String, String, f64)> {
    let grams: Vec<_> = examples.iter().map(|e| trigrams(&e.text)).collect();
    let mut out = Vec::new();
    for (i, held) in examples.iter().enumerate().filter(|(_, e)| e.held_out) {
        for (j, train) in examples.iter().enumerate().filter(|(_, e)| !e.held_out) {
            let s = jaccard(&grams[i], &grams[j]);
            if s >= threshold {
                out.push((held.id.clone(), train.id.clone(), s));
            }
        }
    }
    out
}

/// Trains the model on the training split; returns the model JSON.
pub fn train(
    examples: &[Example],
    corpus_digest: &str,
) -> Result<String, crate::model::ModelError> {
    let data: Vec<_> = examples
        .iter()
        .filter(|e| !e.held_out)
        .map(|e| {
            (
                text::model_features(&text::normalize(&e.text)),
                e.need,
                e.emotion,
            )
        })
        .collect();
    crate::model::TextModel::train(&data, corpus_digest)
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub class: &'static str,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Scores of one task on the held-out split.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub classes: Vec<ClassScore>,
    pub macro_f1: f64,
    pub accuracy: f64,
}

/// What the service says about each held-out message (rules + model, text
/// only), and what the model alone says.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub train: usize,
    pub held_out: usize,
    pub needs: Scores,
    pub emotion: Scores,
    pub model_needs: Scores,
    pub model_emotion: Scores,
    /// Held-out messages whose need or emotion was wrong: (id, expected, got).
    pub errors: Vec<(String, String, String)>,
}

/// Evaluates `policy` (with its model) on the held-out examples.
pub fn evaluate(
    policy: &Policy,
    examples: &[Example],
    now: chrono::DateTime<chrono::Utc>,
) -> Evaluation {
    let held: Vec<&Example> = examples.iter().filter(|e| e.held_out).collect();
    let mut needs = Vec::new();
    let mut emotion = Vec::new();
    let mut model_needs = Vec::new();
    let mut model_emotion = Vec::new();
    let mut errors = Vec::new();
    for e in &held {
        let request = ClassifyRequest {
            text: e.text.clone(),
            ..ClassifyRequest::default()
        };
        let c = crate::classify(policy, &request, now);
        let got_need = c.primary_need();
        let got_emotion = c
            .emotion
            .as_ref()
            .map_or(Emotion::Unspecified, |x| x.emotion());
        needs.push((e.need, got_need));
        emotion.push((e.emotion, got_emotion));
        if got_need != e.need || got_emotion != e.emotion {
            errors.push((
                e.id.clone(),
                format!("{}/{}", need_name(e.need), emotion_name(e.emotion)),
                format!("{}/{}", need_name(got_need), emotion_name(got_emotion)),
            ));
        }
        let p = policy
            .model()
            .predict(&text::model_features(&text::normalize(&e.text)));
        model_needs.push((
            e.need,
            argmax(p.needs.as_ref().map(|a| &a[..])).map_or(Need::Unspecified, |i| NEEDS[i]),
        ));
        model_emotion.push((
            e.emotion,
            argmax(p.emotion.as_ref().map(|a| &a[..]))
                .map_or(Emotion::Unspecified, |i| EMOTIONS[i]),
        ));
    }
    Evaluation {
        train: examples.len() - held.len(),
        held_out: held.len(),
        needs: scores(&needs, &NEEDS, need_name),
        emotion: scores(&emotion, &EMOTIONS, emotion_name),
        model_needs: scores(&model_needs, &NEEDS, need_name),
        model_emotion: scores(&model_emotion, &EMOTIONS, emotion_name),
        errors,
    }
}

fn argmax(values: Option<&[f64]>) -> Option<usize> {
    let values = values?;
    (0..values.len()).max_by(|&a, &b| values[a].total_cmp(&values[b]))
}

fn scores<T: Copy + PartialEq>(
    pairs: &[(T, T)],
    classes: &[T],
    name: fn(T) -> &'static str,
) -> Scores {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per: Vec<ClassScore> = classes
        .iter()
        .map(|&c| {
            let tp = pairs.iter().filter(|(t, p)| *t == c && *p == c).count();
            let predicted = pairs.iter().filter(|(_, p)| *p == c).count();
            let support = pairs.iter().filter(|(t, _)| *t == c).count();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScore {
                class: name(c),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let macro_f1 = per.iter().map(|c| c.f1).sum::<f64>() / per.len().max(1) as f64;
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    Scores {
        classes: per,
        macro_f1,
        accuracy: ratio(correct, pairs.len()),
    }
}

impl Scores {
    /// A table of per-class precision/recall/F1 and the macro-F1.
    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "{title}\n  {:<22} {:>9} {:>7} {:>6} {:>8}\n",
            "class", "precision", "recall", "f1", "support"
        );
        for c in &self.classes {
            let _ = writeln!(
                out,
                "  {:<22} {:>9.3} {:>7.3} {:>6.3} {:>8}",
                c.class, c.precision, c.recall, c.f1, c.support
            );
        }
        let _ = writeln!(
            out,
            "  macro-F1 {:.3}   accuracy {:.3}",
            self.macro_f1, self.accuracy
        );
        out
    }
}
