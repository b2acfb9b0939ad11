//! The policy sections that read the contact's text and history: text
//! context (negation, degree), needs, emotion, moments of truth, risk,
//! churn and handling guidance — as written in the file, and validated into
//! the compiled lexicons the rules use.
//!
//! Every weight and threshold is range-checked with its line, every term
//! list refuses empty and duplicate terms, and guidance categories must be
//! ones the rules can produce, so a typo never silently disables a rule.

use std::collections::{BTreeMap, HashMap, HashSet};

use rapport_proto::{Emotion, Need, RiskKind};
use serde::Deserialize;
use toml::Spanned;

use super::file::Checker;
use crate::model::{EMOTIONS, NEEDS, emotion_name, need_name};
use crate::text::{Context, Matcher, normalize_str};

// ---------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TextFile {
    negation_window_han: Spanned<u32>,
    negation_window_words: Spanned<u32>,
    max_degree: Spanned<f64>,
    negators: Vec<Spanned<String>>,
    #[serde(default)]
    pseudo_negators: Vec<Spanned<String>>,
    #[serde(default)]
    clause_breaks: Vec<Spanned<String>>,
    #[serde(default)]
    degree: BTreeMap<Spanned<String>, Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconFile {
    weight: Spanned<f64>,
    terms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeedTermsFile {
    recognition: LexiconFile,
    soothing: LexiconFile,
    compensation: LexiconFile,
    improvement_measures: LexiconFile,
    concrete_plan: LexiconFile,
    just_talk: LexiconFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeedHistoryFile {
    per_complaint: Spanned<f64>,
    per_compensation_ask: Spanned<f64>,
    per_escalation_threat: Spanned<f64>,
    per_rejected_solution: Spanned<f64>,
    per_repeat_contact: Spanned<f64>,
    silence_days: Spanned<u32>,
    silence_weight: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NeedsFile {
    declared_weight: Spanned<f64>,
    history_weight: Spanned<f64>,
    rules_weight: Spanned<f64>,
    model_weight: Spanned<f64>,
    min_share: Spanned<f64>,
    history: NeedHistoryFile,
    terms: NeedTermsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmotionTermsFile {
    calm: LexiconFile,
    anxious: LexiconFile,
    upset: LexiconFile,
    angry: LexiconFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmotionFile {
    rules_weight: Spanned<f64>,
    model_weight: Spanned<f64>,
    negated_to_calm: Spanned<f64>,
    exclamation_boost: Spanned<f64>,
    exclamation_anger: Spanned<f64>,
    terms: EmotionTermsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentEventFile {
    label: Spanned<String>,
    window_hours: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MomentFile {
    window_hours: Spanned<u32>,
    min_intensity: Spanned<f64>,
    #[serde(default)]
    ordinary_events: Vec<Spanned<String>>,
    terms: Vec<Spanned<String>>,
    events: BTreeMap<Spanned<String>, MomentEventFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationFile {
    terms: Vec<Spanned<String>>,
    history_min: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SolutionsFile {
    terms: Vec<Spanned<String>>,
    min_rejected_90d: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompensationFile {
    terms: Vec<Spanned<String>>,
    min_asked_90d: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsOnlyFile {
    terms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepeatFile {
    min_contacts_7d: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongCallFile {
    min_mean_handle_s: Spanned<u32>,
    min_contacts_30d: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    min_followers: Spanned<u64>,
    terms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RiskFile {
    escalation_threat: EscalationFile,
    solutions_exhausted: SolutionsFile,
    compensation_seeking: CompensationFile,
    rule_disregard: TermsOnlyFile,
    repeat_caller: RepeatFile,
    long_call_cost: LongCallFile,
    public_influence: PublicFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChurnFile {
    base: Spanned<f64>,
    per_complaint: Spanned<f64>,
    angry: Spanned<f64>,
    upset: Spanned<f64>,
    moment_of_truth: Spanned<f64>,
    per_risk_flag: Spanned<f64>,
    terms_weight: Spanned<f64>,
    terms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    default: Spanned<String>,
    #[serde(default)]
    escalation_threat: Option<Spanned<String>>,
    #[serde(default)]
    solutions_exhausted: Option<Spanned<String>>,
    #[serde(default)]
    compensation_seeking: Option<Spanned<String>>,
    #[serde(default)]
    rule_disregard: Option<Spanned<String>>,
    #[serde(default)]
    public_influence: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GuidanceFile {
    max_case_refs: Spanned<u32>,
    standard_policy: Spanned<String>,
    specialist_policy: Spanned<String>,
    empathy_policy: Spanned<String>,
    scope: ScopeFile,
    #[serde(default)]
    solutions: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

// ---------------------------------------------------------------------------
// The validated policy
// ---------------------------------------------------------------------------

/// Negation and degree handling of lexicon terms.
#[derive(Debug, Clone)]
pub struct TextPolicy {
    pub(crate) context: Context,
}

/// How the history signals feed the needs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NeedHistory {
    pub per_complaint: f64,
    pub per_compensation_ask: f64,
    pub per_escalation_threat: f64,
    pub per_rejected_solution: f64,
    pub per_repeat_contact: f64,
    pub silence_days: u32,
    pub silence_weight: f64,
}

/// Needs: how declared needs, history, lexicon and model combine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NeedsPolicy {
    pub declared_weight: f64,
    pub history_weight: f64,
    pub rules_weight: f64,
    pub model_weight: f64,
    /// Needs with a smaller share of the total are not reported.
    pub min_share: f64,
    pub history: NeedHistory,
    pub(crate) terms: Matcher<(Need, f64)>,
}

/// Emotion: lexicon and model.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmotionPolicy {
    pub rules_weight: f64,
    pub model_weight: f64,
    /// How much a negated emotion word ("not angry") counts toward calm.
    pub negated_to_calm: f64,
    /// Intensity added per exclamation mark (at most three count).
    pub exclamation_boost: f64,
    /// Weight added to anger per exclamation mark (at most two) when the
    /// text already shows anger or upset.
    pub exclamation_anger: f64,
    pub(crate) terms: Matcher<(Emotion, f64)>,
}

/// An event kind that makes a moment of truth.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MomentEvent {
    pub label: String,
    pub window_hours: u32,
}

/// Moments of truth.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MomentPolicy {
    pub min_intensity: f64,
    pub events: HashMap<String, MomentEvent>,
    /// Event kinds known not to be moments (no "unknown kind" note).
    pub ordinary_events: HashSet<String>,
    pub(crate) terms: Matcher<()>,
}

/// Risk flag thresholds and lexicons.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RiskPolicy {
    pub escalation_history_min: u32,
    pub min_rejected_90d: u32,
    pub min_compensation_asked_90d: u32,
    pub min_contacts_7d: u32,
    pub min_mean_handle_s: u32,
    pub min_contacts_30d: u32,
    pub min_followers: u64,
    pub(crate) terms: Matcher<RiskKind>,
}

/// Churn risk: a capped sum of weighted signals.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChurnPolicy {
    pub base: f64,
    pub per_complaint: f64,
    pub angry: f64,
    pub upset: f64,
    pub moment_of_truth: f64,
    pub per_risk_flag: f64,
    pub terms_weight: f64,
    pub(crate) terms: Matcher<()>,
}

/// Handling guidance texts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GuidancePolicy {
    pub max_case_refs: u32,
    pub standard_policy: String,
    pub specialist_policy: String,
    pub empathy_policy: String,
    pub default_scope: String,
    /// Script scope per risk kind name (`escalation_threat`...).
    pub scope: HashMap<&'static str, String>,
    /// Prepared solutions per category (need, event kind or risk kind).
    pub solutions: HashMap<String, Vec<String>>,
}

/// The name of a risk kind in the policy, evidence and metrics.
pub fn risk_name(kind: RiskKind) -> &'static str {
    match kind {
        RiskKind::EscalationThreat => "escalation_threat",
        RiskKind::SolutionsExhausted => "solutions_exhausted",
        RiskKind::CompensationSeeking => "compensation_seeking",
        RiskKind::RuleDisregard => "rule_disregard",
        RiskKind::RepeatCaller => "repeat_caller",
        RiskKind::LongCallCost => "long_call_cost",
        RiskKind::PublicInfluence => "public_influence",
        RiskKind::Unspecified => "unspecified",
    }
}

/// Every risk kind the rules raise.
pub const RISK_KINDS: [RiskKind; 7] = [
    RiskKind::EscalationThreat,
    RiskKind::SolutionsExhausted,
    RiskKind::CompensationSeeking,
    RiskKind::RuleDisregard,
    RiskKind::RepeatCaller,
    RiskKind::LongCallCost,
    RiskKind::PublicInfluence,
];

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Longest lexicon term, in characters: terms are words and short phrases.
const MAX_TERM_CHARS: usize = 40;
/// Longest guidance sentence, in characters: it is read on a screen pop.
const MAX_SENTENCE_CHARS: usize = 400;
/// A window of a month: longer "moments" are not moments any more.
const MAX_WINDOW_HOURS: u32 = 24 * 31;

impl Checker<'_> {
    fn unit(&mut self, value: &Spanned<f64>, key: &str) -> f64 {
        self.ranged(value, key, 0.0, 1.0)
    }

    fn ranged(&mut self, value: &Spanned<f64>, key: &str, lo: f64, hi: f64) -> f64 {
        let v = *value.get_ref();
        // NaN fails both comparisons, so it is refused too.
        if !(v >= lo && v <= hi) {
            self.problem(
                value,
                key,
                format!("= {v} is out of range: must be {lo}..={hi}"),
            );
        }
        v
    }

    fn count(&mut self, value: &Spanned<u32>, key: &str, lo: u32, hi: u32) -> u32 {
        let v = *value.get_ref();
        if !(lo..=hi).contains(&v) {
            self.problem(
                value,
                key,
                format!("= {v} is out of range: must be {lo}..={hi}"),
            );
        }
        v
    }

    fn sentence(&mut self, value: &Spanned<String>, key: &str) -> String {
        let v = value.get_ref().trim();
        if v.is_empty() {
            self.problem(value, key, "must not be empty");
        } else if v.chars().count() > MAX_SENTENCE_CHARS {
            self.problem(
                value,
                key,
                format!("must be at most {MAX_SENTENCE_CHARS} characters"),
            );
        }
        v.to_owned()
    }

    /// Normalized terms; empty, overlong and repeated terms are problems.
    fn terms(&mut self, terms: &[Spanned<String>], key: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(terms.len());
        for term in terms {
            let normalized = normalize_str(term.get_ref().trim());
            let body = normalized.trim_end_matches('*');
            if body.trim().is_empty() {
                self.problem(term, key, "must not contain empty terms");
            } else if body.chars().count() > MAX_TERM_CHARS {
                self.problem(
                    term,
                    key,
                    format!(
                        "term {:?} is longer than {MAX_TERM_CHARS} characters",
                        term.get_ref()
                    ),
                );
            } else if !seen.insert(normalized.clone()) {
                self.problem(
                    term,
                    key,
                    format!("term {:?} is listed twice", term.get_ref()),
                );
            } else {
                out.push(normalized);
            }
        }
        out
    }

    fn non_empty_terms(&mut self, terms: &[Spanned<String>], key: &str) -> Vec<String> {
        let out = self.terms(terms, key);
        if terms.is_empty() {
            self.problems.push(super::Problem {
                line: self.line_of_key(key),
                key: key.to_owned(),
                problem: "must list at least one term".to_owned(),
            });
        }
        out
    }

    /// The line where a table key is written, for problems about a value
    /// that has no span of its own (an empty list has one, but TOML arrays
    /// are not spanned here). Falls back to line 1.
    fn line_of_key(&self, key: &str) -> usize {
        let last = key.rsplit('.').next().unwrap_or(key);
        self.source
            .lines()
            .position(|line| {
                let line = line.trim_start();
                line.starts_with(last) && line[last.len()..].trim_start().starts_with('=')
            })
            .map_or(1, |i| i + 1)
    }

    pub(super) fn text(&mut self, file: &TextFile) -> TextPolicy {
        let mut context = Context {
            negators: Matcher::default(),
            pseudo_negators: Matcher::default(),
            breaks: Matcher::default(),
            degree: Matcher::default(),
            window_han: self.count(&file.negation_window_han, "text.negation_window_han", 1, 12)
                as usize,
            window_words: self.count(
                &file.negation_window_words,
                "text.negation_window_words",
                1,
                8,
            ) as usize,
            max_degree: self.ranged(&file.max_degree, "text.max_degree", 1.0, 5.0),
        };
        for t in self.non_empty_terms(&file.negators, "text.negators") {
            context.negators.add(&t, ());
        }
        for t in self.terms(&file.pseudo_negators, "text.pseudo_negators") {
            context.pseudo_negators.add(&t, ());
        }
        for t in self.terms(&file.clause_breaks, "text.clause_breaks") {
            context.breaks.add(&t, ());
        }
        for (term, multiplier) in &file.degree {
            let key = format!("text.degree.{}", term.get_ref());
            let m = self.ranged(multiplier, &key, 0.1, 5.0);
            let t = normalize_str(term.get_ref().trim());
            if t.is_empty() {
                self.problem(term, "text.degree", "must not contain empty terms");
            } else {
                context.degree.add(&t, m);
            }
        }
        TextPolicy { context }
    }

    fn lexicon<T: Copy>(
        &mut self,
        file: &LexiconFile,
        key: &str,
        class: T,
        into: &mut Matcher<(T, f64)>,
    ) {
        let weight = self.ranged(&file.weight, &format!("{key}.weight"), 0.0, 5.0);
        for t in self.non_empty_terms(&file.terms, &format!("{key}.terms")) {
            into.add(&t, (class, weight));
        }
    }

    pub(super) fn needs(&mut self, file: &NeedsFile) -> NeedsPolicy {
        let h = &file.history;
        let history = NeedHistory {
            per_complaint: self.unit(&h.per_complaint, "needs.history.per_complaint"),
            per_compensation_ask: self.unit(
                &h.per_compensation_ask,
                "needs.history.per_compensation_ask",
            ),
            per_escalation_threat: self.unit(
                &h.per_escalation_threat,
                "needs.history.per_escalation_threat",
            ),
            per_rejected_solution: self.unit(
                &h.per_rejected_solution,
                "needs.history.per_rejected_solution",
            ),
            per_repeat_contact: self
                .unit(&h.per_repeat_contact, "needs.history.per_repeat_contact"),
            silence_days: self.count(&h.silence_days, "needs.history.silence_days", 1, 3650),
            silence_weight: self.unit(&h.silence_weight, "needs.history.silence_weight"),
        };
        let mut terms = Matcher::default();
        let t = &file.terms;
        for (lexicon, need) in [
            (&t.recognition, Need::Recognition),
            (&t.soothing, Need::Soothing),
            (&t.compensation, Need::Compensation),
            (&t.improvement_measures, Need::ImprovementMeasures),
            (&t.concrete_plan, Need::ConcretePlan),
            (&t.just_talk, Need::JustTalk),
        ] {
            self.lexicon(
                lexicon,
                &format!("needs.terms.{}", need_name(need)),
                need,
                &mut terms,
            );
        }
        debug_assert_eq!(NEEDS.len(), 6);
        NeedsPolicy {
            declared_weight: self.ranged(&file.declared_weight, "needs.declared_weight", 0.0, 5.0),
            history_weight: self.ranged(&file.history_weight, "needs.history_weight", 0.0, 5.0),
            rules_weight: self.ranged(&file.rules_weight, "needs.rules_weight", 0.0, 5.0),
            model_weight: self.ranged(&file.model_weight, "needs.model_weight", 0.0, 5.0),
            min_share: self.ranged(&file.min_share, "needs.min_share", 0.0, 0.5),
            history,
            terms,
        }
    }

    pub(super) fn emotion(&mut self, file: &EmotionFile) -> EmotionPolicy {
        let mut terms = Matcher::default();
        let t = &file.terms;
        for (lexicon, emotion) in [
            (&t.calm, Emotion::Calm),
            (&t.anxious, Emotion::Anxious),
            (&t.upset, Emotion::Upset),
            (&t.angry, Emotion::Angry),
        ] {
            self.lexicon(
                lexicon,
                &format!("emotion.terms.{}", emotion_name(emotion)),
                emotion,
                &mut terms,
            );
        }
        debug_assert_eq!(EMOTIONS.len(), 4);
        EmotionPolicy {
            rules_weight: self.ranged(&file.rules_weight, "emotion.rules_weight", 0.0, 5.0),
            model_weight: self.ranged(&file.model_weight, "emotion.model_weight", 0.0, 5.0),
            negated_to_calm: self.unit(&file.negated_to_calm, "emotion.negated_to_calm"),
            exclamation_boost: self.ranged(
                &file.exclamation_boost,
                "emotion.exclamation_boost",
                0.0,
                0.3,
            ),
            exclamation_anger: self.unit(&file.exclamation_anger, "emotion.exclamation_anger"),
            terms,
        }
    }

    pub(super) fn moment(&mut self, file: &MomentFile) -> MomentPolicy {
        let default_window = self.count(
            &file.window_hours,
            "moment_of_truth.window_hours",
            1,
            MAX_WINDOW_HOURS,
        );
        let mut events = HashMap::new();
        for (kind, event) in &file.events {
            let key = format!("moment_of_truth.events.{}", kind.get_ref());
            if rapport_kit::validate::name("event kind", kind.get_ref()).is_err() {
                self.problem(kind, &key, "must be an event kind of [a-z0-9_-]");
            }
            let window_hours = match &event.window_hours {
                Some(w) => self.count(w, &format!("{key}.window_hours"), 1, MAX_WINDOW_HOURS),
                None => default_window,
            };
            let label = self.sentence(&event.label, &format!("{key}.label"));
            events.insert(
                kind.get_ref().clone(),
                MomentEvent {
                    label,
                    window_hours,
                },
            );
        }
        let mut ordinary_events = HashSet::new();
        for kind in &file.ordinary_events {
            if events.contains_key(kind.get_ref()) {
                self.problem(
                    kind,
                    "moment_of_truth.ordinary_events",
                    format!("{:?} is also a moment-of-truth event", kind.get_ref()),
                );
            }
            ordinary_events.insert(kind.get_ref().clone());
        }
        let mut terms = Matcher::default();
        for t in self.non_empty_terms(&file.terms, "moment_of_truth.terms") {
            terms.add(&t, ());
        }
        MomentPolicy {
            min_intensity: self.unit(&file.min_intensity, "moment_of_truth.min_intensity"),
            events,
            ordinary_events,
            terms,
        }
    }

    pub(super) fn risk(&mut self, file: &RiskFile) -> RiskPolicy {
        let mut terms = Matcher::default();
        for (list, kind) in [
            (&file.escalation_threat.terms, RiskKind::EscalationThreat),
            (
                &file.solutions_exhausted.terms,
                RiskKind::SolutionsExhausted,
            ),
            (
                &file.compensation_seeking.terms,
                RiskKind::CompensationSeeking,
            ),
            (&file.rule_disregard.terms, RiskKind::RuleDisregard),
            (&file.public_influence.terms, RiskKind::PublicInfluence),
        ] {
            for t in self.non_empty_terms(list, &format!("risk.{}.terms", risk_name(kind))) {
                terms.add(&t, kind);
            }
        }
        let min_followers = *file.public_influence.min_followers.get_ref();
        if min_followers == 0 {
            self.problem(
                &file.public_influence.min_followers,
                "risk.public_influence.min_followers",
                "= 0 is out of range: must be at least 1",
            );
        }
        RiskPolicy {
            escalation_history_min: self.count(
                &file.escalation_threat.history_min,
                "risk.escalation_threat.history_min",
                1,
                100,
            ),
            min_rejected_90d: self.count(
                &file.solutions_exhausted.min_rejected_90d,
                "risk.solutions_exhausted.min_rejected_90d",
                1,
                100,
            ),
            min_compensation_asked_90d: self.count(
                &file.compensation_seeking.min_asked_90d,
                "risk.compensation_seeking.min_asked_90d",
                1,
                100,
            ),
            min_contacts_7d: self.count(
                &file.repeat_caller.min_contacts_7d,
                "risk.repeat_caller.min_contacts_7d",
                2,
                100,
            ),
            min_mean_handle_s: self.count(
                &file.long_call_cost.min_mean_handle_s,
                "risk.long_call_cost.min_mean_handle_s",
                60,
                86_400,
            ),
            min_contacts_30d: self.count(
                &file.long_call_cost.min_contacts_30d,
                "risk.long_call_cost.min_contacts_30d",
                1,
                1000,
            ),
            min_followers,
            terms,
        }
    }

    pub(super) fn churn(&mut self, file: &ChurnFile) -> ChurnPolicy {
        let mut terms = Matcher::default();
        for t in self.non_empty_terms(&file.terms, "churn.terms") {
            terms.add(&t, ());
        }
        ChurnPolicy {
            base: self.unit(&file.base, "churn.base"),
            per_complaint: self.unit(&file.per_complaint, "churn.per_complaint"),
            angry: self.unit(&file.angry, "churn.angry"),
            upset: self.unit(&file.upset, "churn.upset"),
            moment_of_truth: self.unit(&file.moment_of_truth, "churn.moment_of_truth"),
            per_risk_flag: self.unit(&file.per_risk_flag, "churn.per_risk_flag"),
            terms_weight: self.unit(&file.terms_weight, "churn.terms_weight"),
            terms,
        }
    }

    /// `categories` are the names prepared solutions may be filed under.
    pub(super) fn guidance(
        &mut self,
        file: &GuidanceFile,
        categories: &HashSet<String>,
    ) -> GuidancePolicy {
        let mut scope = HashMap::new();
        let s = &file.scope;
        for (value, kind) in [
            (&s.escalation_threat, RiskKind::EscalationThreat),
            (&s.solutions_exhausted, RiskKind::SolutionsExhausted),
            (&s.compensation_seeking, RiskKind::CompensationSeeking),
            (&s.rule_disregard, RiskKind::RuleDisregard),
            (&s.public_influence, RiskKind::PublicInfluence),
        ] {
            if let Some(value) = value {
                let name = risk_name(kind);
                let text = self.sentence(value, &format!("guidance.scope.{name}"));
                scope.insert(name, text);
            }
        }
        let mut solutions = HashMap::new();
        for (category, list) in &file.solutions {
            let key = format!("guidance.solutions.{}", category.get_ref());
            if !categories.contains(category.get_ref()) {
                let mut known: Vec<_> = categories.iter().map(String::as_str).collect();
                known.sort_unstable();
                self.problem(
                    category,
                    &key,
                    format!(
                        "is not a category the rules produce (one of: {})",
                        known.join(", ")
                    ),
                );
                continue;
            }
            let texts: Vec<String> = list.iter().map(|s| self.sentence(s, &key)).collect();
            solutions.insert(category.get_ref().clone(), texts);
        }
        GuidancePolicy {
            max_case_refs: self.count(&file.max_case_refs, "guidance.max_case_refs", 0, 10),
            standard_policy: self.sentence(&file.standard_policy, "guidance.standard_policy"),
            specialist_policy: self.sentence(&file.specialist_policy, "guidance.specialist_policy"),
            empathy_policy: self.sentence(&file.empathy_policy, "guidance.empathy_policy"),
            default_scope: self.sentence(&s.default, "guidance.scope.default"),
            scope,
            solutions,
        }
    }
}

/// The categories guidance and the case library file things under: the
/// needs, the risk kinds, the moment-of-truth event kinds, and
/// `moment_of_truth` itself.
pub(crate) fn categories(moment_events: &HashMap<String, MomentEvent>) -> HashSet<String> {
    let mut out: HashSet<String> = NEEDS.iter().map(|&n| need_name(n).to_owned()).collect();
    out.extend(RISK_KINDS.iter().map(|&k| risk_name(k).to_owned()));
    out.extend(moment_events.keys().cloned());
    out.insert("moment_of_truth".to_owned());
    out
}

#[cfg(test)]
mod tests {
    use crate::policy::{BUILTIN_POLICY, Policy, PolicyError, Problem};

    fn line_of(needle: &str) -> usize {
        BUILTIN_POLICY
            .lines()
            .position(|l| l.trim_start().starts_with(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("built-in policy lacks {needle:?}"))
    }

    fn problems(source: &str) -> Vec<Problem> {
        match Policy::parse(source) {
            Err(PolicyError::Invalid { problems }) => problems,
            other => panic!("expected range problems, got {other:?}"),
        }
    }

    #[test]
    fn out_of_range_weights_are_refused_with_key_and_line() {
        let source = BUILTIN_POLICY.replacen("model_weight = 1.2", "model_weight = 9", 1);
        let p = problems(&source);
        assert_eq!(p[0].key, "needs.model_weight");
        assert_eq!(p[0].line, line_of("model_weight = 1.2"));
        assert!(p[0].to_string().contains("out of range"), "{}", p[0]);

        let source = BUILTIN_POLICY.replacen("per_complaint = 0.25", "per_complaint = -0.1", 1);
        assert_eq!(problems(&source)[0].key, "needs.history.per_complaint");

        let source = BUILTIN_POLICY.replacen("min_intensity = 0.8", "min_intensity = nan", 1);
        assert_eq!(problems(&source)[0].key, "moment_of_truth.min_intensity");

        let source = BUILTIN_POLICY.replacen("min_contacts_7d = 3", "min_contacts_7d = 1", 1);
        assert_eq!(
            problems(&source)[0].key,
            "risk.repeat_caller.min_contacts_7d"
        );
    }

    #[test]
    fn unknown_keys_in_the_new_sections_are_refused_with_their_line() {
        let source = BUILTIN_POLICY.replacen("negated_to_calm = 0.6", "negated_to_clam = 0.6", 1);
        let err = Policy::parse(&source).expect_err("typo");
        assert_eq!(err.line(), Some(line_of("negated_to_calm = 0.6")));
        assert!(err.to_string().contains("negated_to_clam"), "{err}");

        let source = BUILTIN_POLICY.replacen("[needs.terms.just_talk]", "[needs.terms.gossip]", 1);
        assert!(Policy::parse(&source).is_err());
    }

    #[test]
    fn empty_repeated_terms_and_unknown_categories_are_refused() {
        let source = BUILTIN_POLICY.replacen("\"赔偿\", \"补偿\",", "\"赔偿\", \"赔偿\",", 1);
        let p = problems(&source);
        assert_eq!(p[0].key, "needs.terms.compensation.terms");
        assert!(p[0].problem.contains("twice"), "{}", p[0]);

        let source = BUILTIN_POLICY.replacen("\"銀保監會\"", "\"\"", 1);
        let source = source.replacen("\"银保监会\", \"银监会\"", "\"\", \"银监会\"", 1);
        assert_eq!(problems(&source)[0].key, "risk.escalation_threat.terms");

        let source = BUILTIN_POLICY.replacen("card_lost = [\"block", "card_gone = [\"block", 1);
        let p = problems(&source);
        assert_eq!(p[0].key, "guidance.solutions.card_gone");
        assert!(p[0].problem.contains("card_lost"), "{}", p[0]);
    }

    #[test]
    fn the_builtin_sections_compile_their_lexicons() {
        let policy = Policy::builtin().expect("valid");
        assert!(policy.needs().terms.len() > 100);
        assert!(policy.emotion().terms.len() > 100);
        assert!(policy.risk().terms.len() > 50);
        assert_eq!(policy.moment().events["flight_cancelled"].window_hours, 48);
        assert_eq!(policy.moment().events["card_lost"].window_hours, 72);
        assert!(policy.guidance().scope.contains_key("escalation_threat"));
    }
}
