//! The routing policy file: what each IVR selection requires. Parsed
//! strictly (unknown keys are refused with their line) and validated before
//! the service starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The policy compiled into the binary, used when no file is configured.
pub const DEFAULT_POLICY: &str = include_str!("../../../policy/routing.toml");

/// A policy that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to read routing policy {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid routing policy: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid routing policy: {key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// How contacts are matched to agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingPolicy {
    /// Identifies the policy in logs and decisions.
    pub version: String,
    /// Language required when classification cannot tell one.
    pub default_language: String,
    /// Best idle agents read and ranked per decision.
    pub max_candidates: usize,
    /// Queued contacts inspected per group when an agent turns ready.
    pub queue_scan: usize,
    /// Seconds a finished contact's live state is kept.
    pub call_ttl_s: u64,
    /// Ranking weights.
    pub ranking: Weights,
    /// Offers to agent desktops.
    pub offers: Offers,
    /// After-call work.
    pub wrap_up: WrapUp,
    /// Per-channel concurrency of an agent that declares none.
    pub capacity: Capacity,
    /// Estimated wait, service level and callbacks.
    pub patience: Patience,
    /// Field account managers.
    pub field: Field,
    /// Needs and risk that classification reports.
    pub needs: Needs,
    /// IVR selections by id.
    pub selections: BTreeMap<String, Selection>,
}

/// Ranking weights: a candidate's rank is the weighted sum of its
/// components (see `ranking`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Per skill point (0..=10).
    pub skill: f64,
    /// When the agent speaks the caller's dialect (beyond the requirement).
    pub dialect_match: f64,
    /// When the agent speaks the caller's language (beyond the requirement).
    pub language_match: f64,
    /// Per empathy point, only when the contact needs empathy.
    pub empathy: f64,
    /// Per de-escalation point, only when the contact carries risk.
    pub de_escalation: f64,
    /// When the agent is the customer's preferred or dedicated agent.
    pub preferred: f64,
    /// When the customer had good outcomes with the agent (affinity).
    pub affinity: f64,
    /// Per minute idle (fairness), counted up to `idle_cap_min` minutes.
    pub idle_per_min: f64,
    pub idle_cap_min: f64,
    /// Subtracted × the share of the agent's capacity in use.
    pub occupancy: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offers {
    /// Seconds an agent has to accept an offer before it expires.
    pub timeout_s: u64,
    /// Offers in a row an agent may let expire before it is set not ready.
    pub max_missed: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUp {
    /// Longest wrap-up, seconds; the agent turns ready afterwards.
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub voice: u32,
    pub chat: u32,
    pub email: u32,
    pub social: u32,
    pub video: u32,
    /// A voice contact blocks every other channel, and a voice contact is
    /// only offered to an agent holding nothing else.
    pub voice_exclusive: bool,
}

impl Capacity {
    /// Default concurrency per channel number (rapport.v1.Channel).
    pub fn defaults(&self) -> Vec<(i32, u32)> {
        vec![
            (1, self.voice),
            (2, self.chat),
            (3, self.email),
            (4, self.social),
            (5, self.video),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patience {
    /// Answered within this many seconds counts toward the service level.
    pub service_level_threshold_s: u32,
    /// Sliding window of service level and service rate, seconds.
    pub window_s: u64,
    /// Contacts a group must have answered in the window before its wait is
    /// estimated; with fewer there is no evidence and no callback offer.
    pub ewt_min_answered: u32,
    /// Callback windows offered, minutes from now: [start, end] pairs.
    pub callback_windows_min: Vec<[u32; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// A field manager is on duty until this long after its last heartbeat.
    pub presence_ttl_s: u64,
    /// A visit follow-up is planned within this many days.
    pub visit_within_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// Pool of specialists who take risky contacts (never trainees).
    pub risk_pool: String,
}

/// What one IVR selection requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub description: String,
    /// Skill the contact needs.
    pub skill: String,
    /// Minimum skill score for everyone.
    pub min_score: f64,
    /// Stricter requirements for VIP callers.
    #[serde(default)]
    pub vip: Option<VipRule>,
    /// A relationship intent: the caller goes straight to their dedicated
    /// field manager when on duty.
    #[serde(default)]
    pub relationship: bool,
    /// Widening steps (bullseye), by seconds waited.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Requirements applied to VIP callers of a selection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipRule {
    /// Pool VIP callers are served from.
    pub pool: String,
    /// Minimum skill score for VIP callers.
    pub min_score: f64,
    /// Require the caller's dialect, when known.
    pub match_dialect: bool,
}

/// One widening step: after `after_s` seconds the exact requirements are
/// relaxed. Relaxations only ever widen: a step never demands more than the
/// step before, and a risk contact never leaves the specialist pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub after_s: u32,
    /// Finest speech requirement kept: "dialect", "language" or "any".
    #[serde(default = "Step::default_speech")]
    pub speech: String,
    /// Keep the VIP pool.
    #[serde(default = "Step::default_pool")]
    pub pool: bool,
    /// Lower the minimum skill score to at most this.
    #[serde(default)]
    pub min_score: Option<f64>,
}

impl Step {
    fn default_speech() -> String {
        "dialect".to_owned()
    }
    fn default_pool() -> bool {
        true
    }
}

impl RoutingPolicy {
    /// Loads the policy from `path`, or the built-in default.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => DEFAULT_POLICY.to_owned(),
        };
        Self::parse(&text)
    }

    /// Parses and validates policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy: RoutingPolicy = toml::from_str(text)?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |key: String, problem: &str| PolicyError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        let name = |key: String, value: &str| {
            rapport_kit::validate::name(&key, value).map_err(|e| PolicyError::Invalid {
                key,
                problem: e.problem,
            })
        };
        name("default_language".into(), &self.default_language)?;
        if !(1..=256).contains(&self.max_candidates) {
            return Err(invalid("max_candidates".into(), "must be in 1..=256"));
        }
        if !(1..=256).contains(&self.queue_scan) {
            return Err(invalid("queue_scan".into(), "must be in 1..=256"));
        }
        if self.call_ttl_s < 60 {
            return Err(invalid("call_ttl_s".into(), "must be at least 60"));
        }
        if self.selections.is_empty() {
            return Err(invalid(
                "selections".into(),
                "at least one selection is required",
            ));
        }
        for (id, sel) in &self.selections {
            let at = |field: &str| format!("selections.{id}.{field}");
            name(format!("selections.{id}"), id)?;
            name(at("skill"), &sel.skill)?;
            if !(0.0..=10.0).contains(&sel.min_score) {
                return Err(invalid(at("min_score"), "must be between 0 and 10"));
            }
            if let Some(vip) = &sel.vip {
                name(at("vip.pool"), &vip.pool)?;
                if !(0.0..=10.0).contains(&vip.min_score) {
                    return Err(invalid(at("vip.min_score"), "must be between 0 and 10"));
                }
            }
            let mut last = 0;
            for (i, step) in sel.steps.iter().enumerate() {
                let at = |field: &str| format!("selections.{id}.steps[{i}].{field}");
                if step.after_s == 0 || step.after_s <= last || step.after_s > 3600 {
                    return Err(invalid(
                        at("after_s"),
                        "must increase from step to step, within 1..=3600",
                    ));
                }
                last = step.after_s;
                if !["dialect", "language", "any"].contains(&step.speech.as_str()) {
                    return Err(invalid(at("speech"), "must be dialect, language or any"));
                }
                if step.min_score.is_some_and(|m| !(0.0..=10.0).contains(&m)) {
                    return Err(invalid(at("min_score"), "must be between 0 and 10"));
                }
            }
        }
        let w = &self.ranking;
        for (key, value) in [
            ("skill", w.skill),
            ("dialect_match", w.dialect_match),
            ("language_match", w.language_match),
            ("empathy", w.empathy),
            ("de_escalation", w.de_escalation),
            ("preferred", w.preferred),
            ("affinity", w.affinity),
            ("idle_per_min", w.idle_per_min),
            ("idle_cap_min", w.idle_cap_min),
            ("occupancy", w.occupancy),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(invalid(
                    format!("ranking.{key}"),
                    "must be between 0 and 100",
                ));
            }
        }
        if !(1..=600).contains(&self.offers.timeout_s) {
            return Err(invalid("offers.timeout_s".into(), "must be in 1..=600"));
        }
        if !(1..=100).contains(&self.offers.max_missed) {
            return Err(invalid("offers.max_missed".into(), "must be in 1..=100"));
        }
        if !(1..=3600).contains(&self.wrap_up.timeout_s) {
            return Err(invalid("wrap_up.timeout_s".into(), "must be in 1..=3600"));
        }
        for (channel, max) in self.capacity.defaults() {
            if max > 50 {
                return Err(invalid(
                    format!("capacity (channel {channel})"),
                    "must be at most 50",
                ));
            }
        }
        let p = &self.patience;
        if !(1..=3600).contains(&p.service_level_threshold_s) {
            return Err(invalid(
                "patience.service_level_threshold_s".into(),
                "must be in 1..=3600",
            ));
        }
        if !(60..=86_400).contains(&p.window_s) {
            return Err(invalid("patience.window_s".into(), "must be in 60..=86400"));
        }
        if !(1..=1000).contains(&p.ewt_min_answered) {
            return Err(invalid(
                "patience.ewt_min_answered".into(),
                "must be in 1..=1000",
            ));
        }
        if p.callback_windows_min.is_empty()
            || p.callback_windows_min
                .iter()
                .any(|[start, end]| start >= end || *end > 7 * 24 * 60)
        {
            return Err(invalid(
                "patience.callback_windows_min".into(),
                "needs at least one [start, end] pair with start < end ≤ 10080",
            ));
        }
        if !(5..=3600).contains(&self.field.presence_ttl_s) {
            return Err(invalid(
                "field.presence_ttl_s".into(),
                "must be in 5..=3600",
            ));
        }
        if !(1..=90).contains(&self.field.visit_within_days) {
            return Err(invalid(
                "field.visit_within_days".into(),
                "must be in 1..=90",
            ));
        }
        name("needs.risk_pool".into(), &self.needs.risk_pool)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        let policy = RoutingPolicy::parse(DEFAULT_POLICY).expect("default policy parses");
        let wealth = &policy.selections["personal_wealth"];
        assert_eq!(wealth.skill, "wealth");
        assert_eq!(wealth.vip.as_ref().map(|v| v.min_score), Some(9.5));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = DEFAULT_POLICY.replace(
            "max_candidates = 16",
            "max_candidates = 16\nmax_candidatez = 3",
        );
        let err = RoutingPolicy::parse(&text).expect_err("unknown key refused");
        let message = err.to_string();
        assert!(message.contains("max_candidatez"), "{message}");
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn steps_must_widen_over_time() {
        let text = DEFAULT_POLICY.replace("after_s = 25", "after_s = 5");
        let err = RoutingPolicy::parse(&text).expect_err("refused");
        assert!(
            err.to_string()
                .contains("selections.personal_wealth.steps[1].after_s"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_scores_are_refused() {
        let text = DEFAULT_POLICY.replace("min_score = 9.5", "min_score = 11.0");
        let err = RoutingPolicy::parse(&text).expect_err("refused");
        assert!(
            err.to_string()
                .contains("selections.personal_wealth.vip.min_score"),
            "{err}"
        );
    }
}
