//! Hard requirements of a contact: which requirement group it is matched
//! and queued in, and the minimum skill score, derived from the IVR
//! selection's policy and the caller's classification.

use rapport_proto::{Classification, ValueTier};

use crate::groups::{Group, Speech};
use crate::policy::{RoutingPolicy, Selection};

/// The requirements of one contact, with the reasons behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub group: Group,
    pub min_score: f64,
    /// Label for the agents of the group in reasons, e.g. "VIP".
    pub label: String,
    pub reasons: Vec<String>,
}

/// Derives requirements. Without a classification (classification down)
/// the contact is routed on the selection's skill alone.
pub fn derive(
    policy: &RoutingPolicy,
    selection: &Selection,
    classification: Option<&Classification>,
) -> Derived {
    let Some(c) = classification else {
        return Derived {
            group: Group {
                skill: selection.skill.clone(),
                pool: None,
                speech: None,
            },
            min_score: selection.min_score,
            label: selection.skill.clone(),
            reasons: vec![format!(
                "plain skills routing: {} ≥ {:.1}",
                selection.skill, selection.min_score
            )],
        };
    };
    // Names from classification become parts of Redis keys, so anything
    // that is not a clean name is ignored rather than trusted.
    let clean = |s: &str| {
        rapport_kit::validate::name("language", s)
            .is_ok()
            .then(|| s.to_owned())
    };
    let language = clean(&c.language).unwrap_or_else(|| policy.default_language.clone());
    let dialect = clean(&c.dialect);
    let mut reasons = Vec::new();

    let vip = (c.tier == ValueTier::Vip as i32)
        .then_some(selection.vip.as_ref())
        .flatten();
    match vip {
        Some(rule) => {
            let speech = match (&dialect, rule.match_dialect) {
                (Some(d), true) => {
                    reasons.push(format!("dialect {d} required ({})", c.language_reason));
                    Speech::Dialect(d.clone())
                }
                _ => {
                    reasons.push(format!("language {language} required"));
                    Speech::Language(language)
                }
            };
            let min_score = selection.min_score.max(rule.min_score);
            reasons.push(format!(
                "VIP caller: pool {} with {} ≥ {min_score:.1}",
                rule.pool, selection.skill
            ));
            Derived {
                group: Group {
                    skill: selection.skill.clone(),
                    pool: Some(rule.pool.clone()),
                    speech: Some(speech),
                },
                min_score,
                label: rule.pool.to_uppercase(),
                reasons,
            }
        }
        None => {
            reasons.push(format!("language {language} required"));
            Derived {
                group: Group {
                    skill: selection.skill.clone(),
                    pool: None,
                    speech: Some(Speech::Language(language)),
                },
                min_score: selection.min_score,
                label: selection.skill.clone(),
                reasons,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_POLICY;

    fn policy() -> RoutingPolicy {
        RoutingPolicy::parse(DEFAULT_POLICY).expect("default policy")
    }

    fn classification(tier: ValueTier, language: &str, dialect: &str) -> Classification {
        Classification {
            tier: tier as i32,
            tier_reason: "assets 8,000,000 ≥ VIP threshold 5,000,000".into(),
            language: language.into(),
            dialect: dialect.into(),
            language_reason: "inferred from city Xiamen".into(),
            ..Default::default()
        }
    }

    #[test]
    fn vip_wealth_caller_needs_vip_pool_dialect_and_top_skill() {
        let p = policy();
        let d = derive(
            &p,
            &p.selections["personal_wealth"],
            Some(&classification(ValueTier::Vip, "zh", "minnan")),
        );
        assert_eq!(d.group.to_string(), "wealth|p:vip|d:minnan");
        assert_eq!(d.min_score, 9.5);
        assert_eq!(d.label, "VIP");
        assert!(d.reasons[0].starts_with("dialect minnan required"));
    }

    #[test]
    fn standard_caller_needs_language_and_skill() {
        let p = policy();
        let d = derive(
            &p,
            &p.selections["personal_wealth"],
            Some(&classification(ValueTier::Standard, "en", "")),
        );
        assert_eq!(d.group.to_string(), "wealth|l:en");
        assert_eq!(d.min_score, 5.0);
    }

    #[test]
    fn unknown_language_falls_back_to_the_default() {
        let p = policy();
        let d = derive(
            &p,
            &p.selections["cards"],
            Some(&classification(ValueTier::Standard, "", "")),
        );
        assert_eq!(d.group.to_string(), "cards|l:zh");
    }

    #[test]
    fn unsafe_names_from_classification_never_reach_keys() {
        let p = policy();
        let d = derive(
            &p,
            &p.selections["personal_wealth"],
            Some(&classification(ValueTier::Vip, "zh}:x", "min nan")),
        );
        assert_eq!(d.group.to_string(), "wealth|p:vip|l:zh");
    }

    #[test]
    fn without_classification_routing_uses_the_skill_alone() {
        let p = policy();
        let d = derive(&p, &p.selections["personal_wealth"], None);
        assert_eq!(d.group.to_string(), "wealth");
        assert_eq!(d.min_score, 5.0);
    }
}
