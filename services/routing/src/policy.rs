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
    /// IVR selections by id.
    pub selections: BTreeMap<String, Selection>,
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
        }
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
