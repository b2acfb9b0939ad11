//! The classification policy: the thresholds, place lists, patience
//! parameters, lexicons, weights and guidance texts operators tune in
//! `policy/classification.toml`, together with the text model and case
//! library it is used with.
//!
//! A [`Policy`] only exists validated: it is built by [`Policy::parse`]
//! (or [`PolicySource::load`]), which refuses unknown keys and out-of-range
//! values and names the line of each problem. The rules can therefore rely
//! on its invariants (e.g. `floor_s <= default_s`) — though they still never
//! panic if those were broken.
//!
//! The service reads the policy through a [`SharedPolicy`], so a reload
//! (SIGHUP or file change, see `crate::reload`) swaps in a new policy
//! atomically while requests in flight finish on the old one.

mod analysis;
mod file;

#[cfg(test)]
pub(crate) use analysis::categories;
pub use analysis::{
    ChurnPolicy, EmotionPolicy, GuidancePolicy, MomentEvent, MomentPolicy, NeedHistory,
    NeedsPolicy, RISK_KINDS, RiskPolicy, TextPolicy, risk_name,
};

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use crate::cases::{CaseLibrary, CasesError};
use crate::model::{ModelError, TextModel};

/// The default policy, compiled in from `policy/classification.toml` at the
/// repository root so the service runs without any file.
pub const BUILTIN_POLICY: &str = include_str!("../../../../policy/classification.toml");

/// A validated classification policy, with the text model and case library
/// it classifies with (the compiled-in ones unless replaced).
#[derive(Debug, Clone)]
pub struct Policy {
    version: String,
    tiers: TierPolicy,
    language: LanguagePolicy,
    patience: PatiencePolicy,
    text: TextPolicy,
    needs: NeedsPolicy,
    emotion: EmotionPolicy,
    moment: MomentPolicy,
    risk: RiskPolicy,
    churn: ChurnPolicy,
    guidance: GuidancePolicy,
    /// The learned text model; the built-in one unless replaced with
    /// [`Policy::with_model`]. Shared, since it is large and read-only.
    model: Arc<TextModel>,
    /// The case library guidance refers into.
    cases: Arc<CaseLibrary>,
}

impl Policy {
    /// Parses and validates a policy from TOML text.
    pub fn parse(source: &str) -> Result<Self, PolicyError> {
        file::parse(source)
    }

    /// The built-in default policy.
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::parse(BUILTIN_POLICY)
    }

    /// The operator's version string, reported in every classification.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Value tier thresholds.
    pub fn tiers(&self) -> &TierPolicy {
        &self.tiers
    }

    /// Default language and dialect inference.
    pub fn language(&self) -> &LanguagePolicy {
        &self.language
    }

    /// Patience learning parameters.
    pub fn patience(&self) -> &PatiencePolicy {
        &self.patience
    }

    /// Negation and degree words.
    pub fn text(&self) -> &TextPolicy {
        &self.text
    }

    /// Needs lexicons and weights.
    pub fn needs(&self) -> &NeedsPolicy {
        &self.needs
    }

    /// Emotion lexicons and weights.
    pub fn emotion(&self) -> &EmotionPolicy {
        &self.emotion
    }

    /// Moment-of-truth events and words.
    pub fn moment(&self) -> &MomentPolicy {
        &self.moment
    }

    /// Risk flag thresholds and words.
    pub fn risk(&self) -> &RiskPolicy {
        &self.risk
    }

    /// Churn risk weights.
    pub fn churn(&self) -> &ChurnPolicy {
        &self.churn
    }

    /// Handling guidance texts.
    pub fn guidance(&self) -> &GuidancePolicy {
        &self.guidance
    }

    /// The learned text model.
    pub fn model(&self) -> &Arc<TextModel> {
        &self.model
    }

    /// The case library.
    pub fn cases(&self) -> &Arc<CaseLibrary> {
        &self.cases
    }

    /// The same policy with another model (a `--model` file).
    pub fn with_model(mut self, model: Arc<TextModel>) -> Self {
        self.model = model;
        self
    }
}

/// Thresholds of the VIP and PREFERRED tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierPolicy {
    pub vip: Thresholds,
    pub preferred: Thresholds,
}

/// One tier's thresholds, in whole currency units. Reaching any one that is
/// set qualifies; an unset one never does. At least one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Thresholds {
    pub assets: Option<i64>,
    pub contribution: Option<i64>,
    pub potential_value: Option<i64>,
}

/// A dialect agents can be tagged with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dialect {
    /// Routing name, e.g. `minnan`.
    pub name: String,
    /// The language it is a dialect of, e.g. `zh`.
    pub language: String,
}

/// Default language and the dialect lookups, keyed by normalized text
/// (see `normalize`).
#[derive(Debug, Clone)]
pub struct LanguagePolicy {
    default: String,
    dialects: Vec<Dialect>,
    /// Normalized place → index into `dialects`.
    by_place: HashMap<String, usize>,
    /// Normalized dialect name or alias → index into `dialects`.
    by_alias: HashMap<String, usize>,
}

impl LanguagePolicy {
    /// The language used when nothing else tells.
    pub fn default_language(&self) -> &str {
        &self.default
    }

    /// Every dialect the policy knows.
    pub fn dialects(&self) -> &[Dialect] {
        &self.dialects
    }

    /// The dialect spoken in a place, by its key (`normalize::place_key`).
    pub(crate) fn dialect_of_place(&self, key: &str) -> Option<&Dialect> {
        self.by_place.get(key).and_then(|&i| self.dialects.get(i))
    }

    /// The dialect a profile's dialect text names, by its key
    /// (`normalize::dialect_key`): a dialect name or one of its aliases.
    pub(crate) fn dialect_named(&self, key: &str) -> Option<&Dialect> {
        self.by_alias.get(key).and_then(|&i| self.dialects.get(i))
    }
}

/// How patience is learned from waits that preceded complaints or hang-ups.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PatiencePolicy {
    /// Patience without evidence, and the upper bound, seconds.
    pub default_s: u32,
    /// Share of the shortest upsetting wait taken as patience, in (0, 1].
    pub factor: f64,
    /// Lower bound of learned patience, seconds; at most `default_s`.
    pub floor_s: u32,
    /// Upsetting waits needed before patience is learned.
    pub min_evidence: u32,
    /// Only waits within this many days count.
    pub lookback_days: u32,
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
    /// Not TOML, a key the policy does not have, a missing key or a value of
    /// the wrong type. The message (from the TOML parser) shows the line.
    #[error("{message}")]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// Well-formed but with values out of range or inconsistent.
    #[error("{}", join(problems))]
    Invalid { problems: Vec<Problem> },
    /// The compiled-in text model is unusable (a build problem).
    #[error("the built-in text model is unusable")]
    Model(#[source] ModelError),
    /// The compiled-in case library is unusable (a build problem).
    #[error("the built-in case library is unusable")]
    Cases(#[source] CasesError),
}

impl PolicyError {
    /// The line of the (first) problem, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read(_) | Self::Model(_) | Self::Cases(_) => None,
            Self::Syntax { line, .. } => *line,
            Self::Invalid { problems } => problems.first().map(|p| p.line),
        }
    }
}

/// One invalid value: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the policy file.
    pub line: usize,
    /// Dotted key, e.g. `patience.factor`.
    pub key: String,
    /// What is wrong, e.g. `= 1.5 is out of range: must be > 0 and <= 1`.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} {}", self.line, self.key, self.problem)
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The copy compiled into the binary.
    BuiltIn,
    /// An operator's file (e.g. a mounted ConfigMap).
    File(PathBuf),
}

impl PolicySource {
    /// Reads and validates the policy. Called at startup, and by a reload.
    pub fn load(&self) -> Result<Policy, PolicyError> {
        match self {
            Self::BuiltIn => Policy::builtin(),
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(PolicyError::Read)?;
                Policy::parse(&text)
            }
        }
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built-in policy"),
            Self::File(path) => write!(f, "policy file {}", path.display()),
        }
    }
}

/// The policy in force, shared by every request.
///
/// Each request takes the current policy once ([`SharedPolicy::current`])
/// and classifies with it throughout, so a concurrent replacement never
/// mixes two policies within one classification.
#[derive(Debug, Clone)]
pub struct SharedPolicy(Arc<RwLock<Arc<Policy>>>);

impl SharedPolicy {
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        // The lock only guards an `Arc` swap, which cannot be left half
        // done, so a poisoned lock still holds a valid policy.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a new (already validated) policy in force and returns the old.
    pub fn replace(&self, policy: Policy) -> Arc<Policy> {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, Arc::new(policy))
    }
}
