//! Handling guidance for the agent: what may and may not be promised
//! (script scope), how the contact is escalated, prepared solutions by
//! category, references into the case library, and the cautions from the
//! customer's CAUTION tags.
//!
//! The risk decides the handling: an escalation threat or exhausted
//! solutions go to specialist handling with a scope that promises nothing
//! outside policy (the scheduler and agents never reward the pattern with
//! extra compensation); a moment of truth goes to empathy handling; the
//! rest is standard.

use chrono::{DateTime, Utc};
use rapport_proto::{Customer, HandlingGuidance, Need, RiskFlag, RiskKind, TagKind};

use crate::model::need_name;
use crate::policy::{Policy, risk_name};

/// Most prepared solutions shown: a screen pop, not a manual.
const MAX_SOLUTIONS: usize = 6;

pub fn guidance(
    policy: &Policy,
    customer: Option<&Customer>,
    risks: &[RiskFlag],
    primary_need: Need,
    moment_category: Option<&str>,
    now: DateTime<Utc>,
) -> HandlingGuidance {
    let g = policy.guidance();
    let kinds: Vec<RiskKind> = risks.iter().map(RiskFlag::kind).collect();

    let scopes: Vec<&str> = kinds
        .iter()
        .filter_map(|&k| g.scope.get(risk_name(k)).map(String::as_str))
        .collect();
    let script_scope = if scopes.is_empty() {
        g.default_scope.clone()
    } else {
        scopes.join(" ")
    };

    let specialist = kinds
        .iter()
        .any(|k| matches!(k, RiskKind::EscalationThreat | RiskKind::SolutionsExhausted));
    let escalation_policy = if specialist {
        g.specialist_policy.clone()
    } else if moment_category.is_some() {
        g.empathy_policy.clone()
    } else {
        g.standard_policy.clone()
    };

    // Most specific first: the moment, then the risks, then the need.
    let mut categories: Vec<&str> = Vec::new();
    if let Some(c) = moment_category {
        categories.push(c);
        if c != "moment_of_truth" {
            categories.push("moment_of_truth");
        }
    }
    categories.extend(kinds.iter().map(|&k| risk_name(k)));
    if primary_need != Need::Unspecified {
        categories.push(need_name(primary_need));
    }

    let mut prepared_solutions: Vec<String> = Vec::new();
    for category in &categories {
        for s in g.solutions.get(*category).into_iter().flatten() {
            if prepared_solutions.len() < MAX_SOLUTIONS && !prepared_solutions.contains(s) {
                prepared_solutions.push(s.clone());
            }
        }
    }
    let case_refs = policy.cases().refs(&categories, g.max_case_refs as usize);

    let cautions = customer
        .map(|c| {
            c.tags
                .iter()
                .filter(|t| t.kind() == TagKind::Caution)
                .filter(|t| {
                    // The profile drops expired tags; a stale copy must not
                    // warn about something no longer true either.
                    t.expires_at
                        .as_ref()
                        .and_then(super::timestamp)
                        .is_none_or(|at| at > now)
                })
                .map(|t| t.text.trim().chars().take(200).collect::<String>())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();

    HandlingGuidance {
        script_scope,
        escalation_policy,
        prepared_solutions,
        case_refs,
        cautions,
    }
}
