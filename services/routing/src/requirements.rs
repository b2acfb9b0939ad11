//! Requirements of a contact, derived from the IVR selection's policy and
//! the caller's classification: the requirement group it is matched and
//! queued in with a minimum skill score (hard), the needs that weigh in
//! ranking (empathy, de-escalation — soft), and the widening steps
//! (bullseye) that relax the hard part as the caller waits.
//!
//! Needs and risk take effect as soon as classification reports them:
//! empathy when a moment of truth is flagged, the primary need is soothing,
//! or the caller is upset or angry; the specialist pool (never a trainee)
//! when the caller threatens escalation or has exhausted the solutions
//! offered.

use rapport_proto::{Classification, Emotion, Need, RiskKind, ValueTier};

use crate::groups::{Group, Speech};
use crate::policy::{RoutingPolicy, Selection};

/// One widening step: from `after_s` of waiting, match in `group` at
/// `min_score`.
#[derive(Debug, Clone, PartialEq)]
pub struct Widening {
    pub after_s: u32,
    pub group: Group,
    pub min_score: f64,
    pub description: String,
}

/// The requirements of one contact, with the reasons behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub group: Group,
    pub min_score: f64,
    /// Label for the agents of the group in reasons, e.g. "VIP".
    pub label: String,
    pub reasons: Vec<String>,
    /// Why empathy counts in ranking, when it does.
    pub empathy_need: Option<String>,
    /// Why de-escalation counts (risk), when it does.
    pub de_escalation_need: Option<String>,
    /// Widening steps after the exact requirements, in order.
    pub steps: Vec<Widening>,
    /// The caller's dialect and language as classified (clean names).
    pub dialect: Option<String>,
    pub language: Option<String>,
}

fn emotion_name(e: i32) -> Option<&'static str> {
    match Emotion::try_from(e).ok()? {
        Emotion::Upset => Some("upset"),
        Emotion::Angry => Some("angry"),
        _ => None,
    }
}

/// Why the contact needs proven empathy, if it does.
pub fn empathy_need(c: &Classification) -> Option<String> {
    if let Some(m) = c.moment_of_truth.as_ref().filter(|m| m.flagged) {
        return Some(if m.reason.is_empty() {
            "moment of truth".to_owned()
        } else {
            format!("moment of truth: {}", m.reason)
        });
    }
    if c.primary_need == Need::Soothing as i32 {
        return Some("wants soothing".to_owned());
    }
    c.emotion
        .as_ref()
        .and_then(|e| emotion_name(e.emotion))
        .map(|e| format!("caller is {e}"))
}

/// Why the contact carries risk that needs a specialist, if it does.
pub fn risk(c: &Classification) -> Option<String> {
    c.risk_flags.iter().find_map(|f| {
        match RiskKind::try_from(f.kind).ok()? {
            RiskKind::EscalationThreat => Some("escalation threat"),
            RiskKind::SolutionsExhausted => Some("every offered solution rejected"),
            _ => None,
        }
        .map(|kind| match f.evidence.first() {
            Some(e) => format!("{kind} ({e})"),
            None => kind.to_owned(),
        })
    })
}

/// The requirements classification most likely gives, before it answers:
/// what a caller with no needs, no risk and no VIP tier gets, in the
/// language classification will pick (the profile's language, then the
/// preferred one, then the IVR's hint, then the policy default — the
/// order of the classifier's language rule). Routing reads the candidates
/// of this group while classification runs; a wrong guess costs only a
/// second read, because the reservation script re-checks every candidate.
pub fn predict(
    policy: &RoutingPolicy,
    selection: &Selection,
    profile: Option<&rapport_proto::ProfileView>,
    hint: &str,
) -> Derived {
    let customer = profile.and_then(|p| p.customer.as_ref());
    let preferred = customer
        .and_then(|c| c.preferences.as_ref())
        .map_or("", |p| p.language.as_str());
    let language = [
        customer.map_or("", |c| c.language.as_str()),
        preferred,
        hint,
    ]
    .into_iter()
    .map(|raw| {
        // The primary subtag, as the classifier normalizes "zh-CN".
        raw.trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    })
    .find(|tag| !tag.is_empty())
    .unwrap_or_default();
    let guess = Classification {
        language,
        tier: ValueTier::Standard as i32,
        ..Default::default()
    };
    derive(policy, selection, Some(&guess))
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
            empathy_need: None,
            de_escalation_need: None,
            steps: Vec::new(),
            dialect: None,
            language: None,
        };
    };
    // Names from classification become parts of Redis keys, so anything
    // that is not a clean name is ignored rather than trusted.
    let clean = |s: &str| {
        rapport_kit::validate::name("language", s)
            .is_ok()
            .then(|| s.to_owned())
    };
    let classified_language = clean(&c.language);
    let language = classified_language
        .clone()
        .unwrap_or_else(|| policy.default_language.clone());
    let dialect = clean(&c.dialect);
    let mut reasons = Vec::new();
    let empathy = empathy_need(c);
    let risk = risk(c);

    let vip = (c.tier == ValueTier::Vip as i32)
        .then_some(selection.vip.as_ref())
        .flatten();
    let (mut group, mut min_score, mut label) = match vip {
        Some(rule) => {
            let speech = match (&dialect, rule.match_dialect) {
                (Some(d), true) => {
                    reasons.push(format!("dialect {d} required ({})", c.language_reason));
                    Speech::Dialect(d.clone())
                }
                _ => {
                    reasons.push(format!("language {language} required"));
                    Speech::Language(language.clone())
                }
            };
            let min_score = selection.min_score.max(rule.min_score);
            reasons.push(format!(
                "VIP caller: pool {} with {} ≥ {min_score:.1}",
                rule.pool, selection.skill
            ));
            (
                Group {
                    skill: selection.skill.clone(),
                    pool: Some(rule.pool.clone()),
                    speech: Some(speech),
                },
                min_score,
                rule.pool.to_uppercase(),
            )
        }
        None => {
            reasons.push(format!("language {language} required"));
            (
                Group {
                    skill: selection.skill.clone(),
                    pool: None,
                    speech: Some(Speech::Language(language.clone())),
                },
                selection.min_score,
                selection.skill.clone(),
            )
        }
    };
    // Risk overrides the VIP pool: a specialist, never a trainee (trainees
    // are never indexed in the risk pool), and widening never leaves it.
    if let Some(why) = &risk {
        group.pool = Some(policy.needs.risk_pool.clone());
        min_score = min_score.max(selection.min_score);
        label = format!("{} specialist", policy.needs.risk_pool);
        reasons.push(format!(
            "risk: {why}: specialist pool {}, never a trainee",
            policy.needs.risk_pool
        ));
    }
    if let Some(why) = &empathy {
        reasons.push(format!("empathy needed: {why}"));
    }

    // Widening steps relax the exact requirements, never tighten them.
    let mut steps: Vec<Widening> = Vec::new();
    let mut last = (group.clone(), min_score);
    for step in &selection.steps {
        let speech = match (step.speech.as_str(), &group.speech) {
            ("any", _) => None,
            ("language", Some(Speech::Dialect(_))) => Some(Speech::Language(language.clone())),
            (_, s) => s.clone(),
        };
        let pool = if step.pool || risk.is_some() {
            group.pool.clone()
        } else {
            None
        };
        let next = Group {
            skill: group.skill.clone(),
            pool,
            speech,
        };
        let mut min = step.min_score.map_or(last.1, |m| m.min(last.1));
        if risk.is_some() {
            min = min.max(selection.min_score).min(last.1);
        }
        if next == last.0 && min == last.1 {
            continue;
        }
        steps.push(Widening {
            after_s: step.after_s,
            description: describe(&next, min, step.after_s),
            group: next.clone(),
            min_score: min,
        });
        last = (next, min);
    }
    Derived {
        group,
        min_score,
        label,
        reasons,
        empathy_need: empathy,
        de_escalation_need: risk,
        steps,
        dialect,
        language: classified_language,
    }
}

/// "after 10 s: language zh, VIP pool, wealth ≥ 8.0".
pub fn describe(group: &Group, min_score: f64, after_s: u32) -> String {
    let mut parts = Vec::new();
    match &group.speech {
        Some(Speech::Dialect(d)) => parts.push(format!("dialect {d}")),
        Some(Speech::Language(l)) => parts.push(format!("language {l}")),
        None => parts.push("any language".to_owned()),
    }
    if let Some(pool) = &group.pool {
        parts.push(format!("pool {pool}"));
    }
    parts.push(format!("{} ≥ {min_score:.1}", group.skill));
    format!("after {after_s} s: {}", parts.join(", "))
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
    fn the_prediction_is_what_a_plain_caller_gets_in_the_classifiers_language() {
        let p = policy();
        let sel = &p.selections["personal_wealth"];
        let view = |language: &str, preferred: &str| rapport_proto::ProfileView {
            customer: Some(rapport_proto::Customer {
                language: language.into(),
                preferences: Some(rapport_proto::Preferences {
                    language: preferred.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let plain = |language: &str| {
            derive(
                &p,
                sel,
                Some(&classification(ValueTier::Standard, language, "")),
            )
        };
        // Profile language first, then the preferred one, then the hint
        // (primary subtag, lowercased), then the policy default.
        let cases = [
            (Some(view("en-GB", "zh")), "zh", "en"),
            (Some(view("", "ZH_cn")), "en", "zh"),
            (Some(view("", "")), "en", "en"),
            (None, "", p.default_language.as_str()),
        ];
        for (profile, hint, language) in cases {
            let guess = predict(&p, sel, profile.as_ref(), hint);
            let actual = plain(language);
            assert_eq!(guess.group, actual.group, "{language}");
            assert_eq!(guess.min_score, actual.min_score);
        }
        // It is a real group with the language, never the bare skill group
        // (which classification never gives).
        let bare = derive(&p, sel, None);
        assert_ne!(predict(&p, sel, None, "zh").group, bare.group);
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
    fn vip_wealth_caller_widens_like_a_bullseye() {
        let p = policy();
        let d = derive(
            &p,
            &p.selections["personal_wealth"],
            Some(&classification(ValueTier::Vip, "zh", "minnan")),
        );
        let steps: Vec<(u32, String, f64)> = d
            .steps
            .iter()
            .map(|s| (s.after_s, s.group.to_string(), s.min_score))
            .collect();
        assert_eq!(
            steps,
            [
                (10, "wealth|p:vip|l:zh".to_owned(), 8.0),
                (25, "wealth".to_owned(), 5.0)
            ]
        );
        assert_eq!(
            d.steps[0].description,
            "after 10 s: language zh, pool vip, wealth ≥ 8.0"
        );
    }

    #[test]
    fn needs_and_risk_from_classification_take_effect() {
        let p = policy();
        let mut c = classification(ValueTier::Vip, "zh", "minnan");
        c.moment_of_truth = Some(rapport_proto::MomentOfTruth {
            flagged: true,
            reason: "card lost abroad".into(),
        });
        let d = derive(&p, &p.selections["cards"], Some(&c));
        assert_eq!(
            d.empathy_need.as_deref(),
            Some("moment of truth: card lost abroad")
        );
        assert_eq!(d.de_escalation_need, None);

        let mut c = classification(ValueTier::Standard, "zh", "");
        c.primary_need = Need::Soothing as i32;
        assert_eq!(empathy_need(&c).as_deref(), Some("wants soothing"));
        c.primary_need = 0;
        c.emotion = Some(rapport_proto::EmotionResult {
            emotion: Emotion::Angry as i32,
            ..Default::default()
        });
        assert_eq!(empathy_need(&c).as_deref(), Some("caller is angry"));

        // A VIP threatening the regulator goes to the specialists, and
        // widening never leaves them.
        let mut c = classification(ValueTier::Vip, "zh", "minnan");
        c.risk_flags.push(rapport_proto::RiskFlag {
            kind: RiskKind::EscalationThreat as i32,
            evidence: vec!["\"I will call the regulator\"".into()],
        });
        let d = derive(&p, &p.selections["personal_wealth"], Some(&c));
        assert_eq!(d.group.to_string(), "wealth|p:complaints|d:minnan");
        assert!(d.de_escalation_need.is_some());
        assert!(
            d.steps
                .iter()
                .all(|s| s.group.pool.as_deref() == Some("complaints") && s.min_score >= 5.0)
        );
    }

    #[test]
    fn without_classification_routing_uses_the_skill_alone() {
        let p = policy();
        let d = derive(&p, &p.selections["personal_wealth"], None);
        assert_eq!(d.group.to_string(), "wealth");
        assert_eq!(d.min_score, 5.0);
        assert!(d.steps.is_empty());
    }
}
