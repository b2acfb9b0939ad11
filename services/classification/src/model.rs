//! The learned text model: two multinomial naive Bayes classifiers over the
//! features of [`crate::text::model_features`], one for the six needs and
//! one for the four emotions.
//!
//! Naive Bayes because the corpus is small (hundreds of messages): it needs
//! no tuning beyond its smoothing, trains in milliseconds, and its per-word
//! weights can be read and checked by a person. It is trained by
//! `make train` (`classification-train train`) from
//! `data/classification/corpus.tsv`; the JSON it writes is versioned with the
//! corpus (it records the corpus digest) and compiled into the binary, and a
//! `--model` file overrides it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rapport_proto::{Emotion, Need};
use serde::{Deserialize, Serialize};

/// The six needs in the model's class order.
pub const NEEDS: [Need; 6] = [
    Need::Recognition,
    Need::Soothing,
    Need::Compensation,
    Need::ImprovementMeasures,
    Need::ConcretePlan,
    Need::JustTalk,
];

/// The four emotions in the model's class order.
pub const EMOTIONS: [Emotion; 4] = [
    Emotion::Calm,
    Emotion::Anxious,
    Emotion::Upset,
    Emotion::Angry,
];

/// The label of a need in the corpus, the policy and evidence.
pub fn need_name(need: Need) -> &'static str {
    match need {
        Need::Recognition => "recognition",
        Need::Soothing => "soothing",
        Need::Compensation => "compensation",
        Need::ImprovementMeasures => "improvement_measures",
        Need::ConcretePlan => "concrete_plan",
        Need::JustTalk => "just_talk",
        Need::Unspecified => "unspecified",
    }
}

/// The label of an emotion in the corpus, the policy and evidence.
pub fn emotion_name(emotion: Emotion) -> &'static str {
    match emotion {
        Emotion::Calm => "calm",
        Emotion::Anxious => "anxious",
        Emotion::Upset => "upset",
        Emotion::Angry => "angry",
        Emotion::Unspecified => "unspecified",
    }
}

/// The model compiled into the binary.
pub const BUILTIN_MODEL: &str = include_str!("../../../data/classification/model.json");

/// Format of the model file this code reads and writes.
const FORMAT: u32 = 1;

/// Smoothing of the word probabilities (Lidstone).
const ALPHA: f64 = 0.3;

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the model file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the model is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the model is invalid: {0}")]
    Invalid(String),
}

/// One naive Bayes classifier as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BayesFile {
    classes: Vec<String>,
    log_prior: Vec<f64>,
    /// Feature → log P(feature | class), per class.
    features: BTreeMap<String, Vec<f32>>,
}

/// The model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelFile {
    format: u32,
    /// FNV-1a digest of the corpus it was trained on.
    corpus_digest: String,
    train_examples: usize,
    needs: BayesFile,
    emotion: BayesFile,
}

#[derive(Debug)]
struct Bayes {
    log_prior: Vec<f64>,
    features: HashMap<String, Vec<f32>>,
}

/// A loaded model.
#[derive(Debug)]
pub struct TextModel {
    corpus_digest: String,
    needs: Bayes,
    emotion: Bayes,
}

/// The model's reading of one text: a probability per class, in the order
/// of [`NEEDS`] and [`EMOTIONS`]. `None` when no feature of the text was
/// known to the model (it abstains rather than return its priors).
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub needs: Option<[f64; 6]>,
    pub emotion: Option<[f64; 4]>,
}

static BUILTIN: LazyLock<Result<Arc<TextModel>, String>> = LazyLock::new(|| {
    TextModel::parse(BUILTIN_MODEL)
        .map(Arc::new)
        .map_err(|e| e.to_string())
});

impl TextModel {
    /// The compiled-in model, parsed once per process.
    pub fn builtin() -> Result<Arc<Self>, ModelError> {
        BUILTIN.clone().map_err(ModelError::Invalid)
    }

    /// Loads a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks a model.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let file: ModelFile = serde_json::from_str(text)?;
        if file.format != FORMAT {
            return Err(ModelError::Invalid(format!(
                "format {} is not the supported format {FORMAT}",
                file.format
            )));
        }
        let needs = Bayes::from_file(file.needs, &NEEDS.map(need_name), "needs")?;
        let emotion = Bayes::from_file(file.emotion, &EMOTIONS.map(emotion_name), "emotion")?;
        Ok(Self {
            corpus_digest: file.corpus_digest,
            needs,
            emotion,
        })
    }

    /// Digest of the corpus the model was trained on.
    pub fn corpus_digest(&self) -> &str {
        &self.corpus_digest
    }

    /// Class probabilities for a text's features.
    pub fn predict(&self, features: &[String]) -> Prediction {
        let unique: HashSet<&str> = features.iter().map(String::as_str).collect();
        Prediction {
            needs: self.needs.predict(&unique).map(to_array),
            emotion: self.emotion.predict(&unique).map(to_array),
        }
    }

    /// Trains both classifiers on labelled feature lists and returns the
    /// model file as pretty JSON.
    pub fn train(
        examples: &[(Vec<String>, Need, Emotion)],
        corpus_digest: &str,
    ) -> Result<String, ModelError> {
        let needs: Vec<_> = examples
            .iter()
            .map(|(f, n, _)| (f, class_of(&NEEDS, *n)))
            .collect();
        let emotion: Vec<_> = examples
            .iter()
            .map(|(f, _, e)| (f, class_of(&EMOTIONS, *e)))
            .collect();
        let file = ModelFile {
            format: FORMAT,
            corpus_digest: corpus_digest.to_owned(),
            train_examples: examples.len(),
            needs: train_bayes(&needs, &NEEDS.map(need_name)),
            emotion: train_bayes(&emotion, &EMOTIONS.map(emotion_name)),
        };
        Ok(serde_json::to_string_pretty(&file)?)
    }
}

fn class_of<T: PartialEq>(classes: &[T], value: T) -> Option<usize> {
    classes.iter().position(|c| *c == value)
}

fn to_array<const N: usize>(v: Vec<f64>) -> [f64; N] {
    let mut out = [0.0; N];
    for (o, p) in out.iter_mut().zip(v) {
        *o = p;
    }
    out
}

fn train_bayes(examples: &[(&Vec<String>, Option<usize>)], classes: &[&str]) -> BayesFile {
    let k = classes.len();
    let mut docs = vec![0usize; k];
    let mut totals = vec![0usize; k];
    let mut counts: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut document_frequency: HashMap<&str, usize> = HashMap::new();
    for (features, class) in examples {
        let Some(class) = *class else { continue };
        docs[class] += 1;
        // Presence, not frequency: in short messages a repeated word says
        // more about the writer's style than about the class.
        let unique: HashSet<&str> = features.iter().map(String::as_str).collect();
        for feature in unique {
            counts.entry(feature).or_insert_with(|| vec![0; k])[class] += 1;
            totals[class] += 1;
            *document_frequency.entry(feature).or_default() += 1;
        }
    }
    // Bigrams seen once are noise that only bloats the file; single words
    // seen once still carry meaning (a rare word is often a telling one).
    counts.retain(|f, _| !f.contains(' ') || document_frequency.get(f).copied().unwrap_or(0) >= 2);
    let vocabulary = counts.len() as f64;
    let n: usize = docs.iter().sum();
    let log_prior = docs
        .iter()
        .map(|&d| ((d as f64 + 1.0) / (n as f64 + k as f64)).ln())
        .collect();
    let features = counts
        .into_iter()
        .map(|(feature, per_class)| {
            let logs = per_class
                .iter()
                .zip(&totals)
                .map(|(&c, &t)| {
                    let p = (c as f64 + ALPHA) / (t as f64 + ALPHA * vocabulary);
                    // Four decimals are plenty and keep the file small.
                    ((p.ln() * 1e4).round() / 1e4) as f32
                })
                .collect();
            (feature.to_owned(), logs)
        })
        .collect();
    BayesFile {
        classes: classes.iter().map(|&c| c.to_owned()).collect(),
        log_prior,
        features,
    }
}

impl Bayes {
    fn from_file(file: BayesFile, classes: &[&str], name: &str) -> Result<Self, ModelError> {
        if file.classes != classes {
            return Err(ModelError::Invalid(format!(
                "{name} classes are {:?}, expected {classes:?}",
                file.classes
            )));
        }
        let k = classes.len();
        if file.log_prior.len() != k || file.log_prior.iter().any(|p| !p.is_finite()) {
            return Err(ModelError::Invalid(format!("{name} priors are malformed")));
        }
        if let Some((feature, _)) = file
            .features
            .iter()
            .find(|(_, v)| v.len() != k || v.iter().any(|p| !p.is_finite()))
        {
            return Err(ModelError::Invalid(format!(
                "{name} feature {feature:?} is malformed"
            )));
        }
        Ok(Self {
            log_prior: file.log_prior,
            features: file.features.into_iter().collect(),
        })
    }

    fn predict(&self, features: &HashSet<&str>) -> Option<Vec<f64>> {
        let mut scores = self.log_prior.clone();
        let mut known = 0usize;
        for feature in features {
            if let Some(logs) = self.features.get(*feature) {
                known += 1;
                for (s, &l) in scores.iter_mut().zip(logs) {
                    *s += f64::from(l);
                }
            }
        }
        if known == 0 {
            return None;
        }
        // Naive Bayes is over-confident because words are not independent;
        // tempering by the square root of the evidence keeps its
        // probabilities usable next to the rules' scores.
        let temper = (known as f64).sqrt().max(1.0);
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = scores.iter().map(|s| ((s - max) / temper).exp()).collect();
        let sum: f64 = exp.iter().sum();
        Some(exp.into_iter().map(|e| e / sum).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{model_features, normalize};

    fn features(text: &str) -> Vec<String> {
        model_features(&normalize(text))
    }

    #[test]
    fn trains_and_predicts_and_round_trips() {
        let examples = vec![
            (features("我要赔偿"), Need::Compensation, Emotion::Angry),
            (
                features("please refund me"),
                Need::Compensation,
                Emotion::Upset,
            ),
            (features("随便聊聊"), Need::JustTalk, Emotion::Calm),
            (features("just want to chat"), Need::JustTalk, Emotion::Calm),
        ];
        let json = TextModel::train(&examples, "digest").expect("trains");
        let model = TextModel::parse(&json).expect("parses");
        assert_eq!(model.corpus_digest(), "digest");
        let p = model.predict(&features("refund please"));
        let needs = p.needs.expect("known words");
        assert!(needs[2] > needs[5], "{needs:?}");
        assert!((needs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(model.predict(&features("zzzz")).needs, None);
    }

    #[test]
    fn a_malformed_model_is_refused() {
        assert!(matches!(TextModel::parse("{}"), Err(ModelError::Json(_))));
        let examples = vec![(features("hi"), Need::JustTalk, Emotion::Calm)];
        let json = TextModel::train(&examples, "d").expect("trains");
        let broken = json.replace("\"format\": 1", "\"format\": 9");
        assert!(matches!(
            TextModel::parse(&broken),
            Err(ModelError::Invalid(_))
        ));
    }

    #[test]
    fn the_builtin_model_loads() {
        TextModel::builtin().expect("built-in model");
    }
}
