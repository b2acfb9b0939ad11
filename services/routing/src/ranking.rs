//! Ranking the free candidates of a requirement group.
//!
//! Candidates arrive already filtered by the hard requirements (they come
//! from the group's idle index, above the minimum score). Each gets a rank
//! that is the weighted sum of its components — skill, dialect or language
//! beyond the requirement, empathy and de-escalation (only when the contact
//! needs them), preferred or dedicated agent, affinity, time idle
//! (fairness) and occupancy — with the weights from the policy file. Ties go
//! to the longest idle, then the id, so the order is total and
//! deterministic. The components of the winner become readable reasons.

use crate::policy::Weights;

/// A free agent that satisfies the contact's hard requirements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Candidate {
    pub agent_id: String,
    /// Skill score for the contact's skill, 0..=10.
    pub score: f64,
    /// When the agent last became idle, milliseconds since the epoch.
    pub idle_since_ms: i64,
    pub empathy: f64,
    pub de_escalation: f64,
    /// Share of the agent's total channel capacity in use, 0..=1.
    pub occupancy: f64,
    pub dialects: Vec<String>,
    pub languages: Vec<String>,
}

/// What the contact brings to ranking.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub skill: String,
    /// The caller's dialect and language (from classification).
    pub dialect: Option<String>,
    pub language: Option<String>,
    /// Already hard requirements of the group: then no bonus.
    pub dialect_required: bool,
    pub language_required: bool,
    /// Why empathy counts (moment of truth, soothing, upset…), if it does.
    pub empathy_need: Option<String>,
    /// Why de-escalation counts (risk), if it does.
    pub de_escalation_need: Option<String>,
    /// The customer's preferred or dedicated agents.
    pub preferred: Vec<String>,
    /// Agents the customer had good outcomes with.
    pub affinity: Vec<String>,
    /// The clock, injected.
    pub now_ms: i64,
}

/// One weighted component of a rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: &'static str,
    pub points: f64,
    pub reason: String,
}

/// A ranked candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub candidate: Candidate,
    pub total: f64,
    pub components: Vec<Component>,
}

fn components(c: &Candidate, ctx: &Context, w: &Weights) -> Vec<Component> {
    let mut out = vec![Component {
        name: "skill",
        points: w.skill * c.score,
        reason: format!("{} skill {:.1}", ctx.skill, c.score),
    }];
    if let Some(d) = &ctx.dialect
        && !ctx.dialect_required
        && c.dialects.contains(d)
    {
        out.push(Component {
            name: "dialect",
            points: w.dialect_match,
            reason: format!("dialect {d} matched"),
        });
    }
    if let Some(l) = &ctx.language
        && !ctx.language_required
        && !ctx.dialect_required
        && c.languages.contains(l)
    {
        out.push(Component {
            name: "language",
            points: w.language_match,
            reason: format!("language {l} matched"),
        });
    }
    if let Some(why) = &ctx.empathy_need {
        out.push(Component {
            name: "empathy",
            points: w.empathy * c.empathy,
            reason: format!("empathy {:.1} counted ({why})", c.empathy),
        });
    }
    if let Some(why) = &ctx.de_escalation_need {
        out.push(Component {
            name: "de_escalation",
            points: w.de_escalation * c.de_escalation,
            reason: format!("de-escalation {:.1} counted ({why})", c.de_escalation),
        });
    }
    if ctx.preferred.contains(&c.agent_id) {
        out.push(Component {
            name: "preferred",
            points: w.preferred,
            reason: format!("{} is the customer's preferred agent", c.agent_id),
        });
    }
    if ctx.affinity.contains(&c.agent_id) {
        out.push(Component {
            name: "affinity",
            points: w.affinity,
            reason: format!("good outcomes with {} before (affinity)", c.agent_id),
        });
    }
    let idle_min = ((ctx.now_ms - c.idle_since_ms).max(0) as f64 / 60_000.0).min(w.idle_cap_min);
    if idle_min > 0.0 && w.idle_per_min > 0.0 {
        out.push(Component {
            name: "idle",
            points: w.idle_per_min * idle_min,
            reason: format!("idle {idle_min:.1} min"),
        });
    }
    if c.occupancy > 0.0 {
        out.push(Component {
            name: "occupancy",
            points: -w.occupancy * c.occupancy,
            reason: format!("{:.0} % of capacity in use", c.occupancy * 100.0),
        });
    }
    out
}

/// Orders candidates best first.
pub fn rank(candidates: Vec<Candidate>, ctx: &Context, weights: &Weights) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = candidates
        .into_iter()
        .map(|c| {
            let components = components(&c, ctx, weights);
            Ranked {
                total: components.iter().map(|x| x.points).sum(),
                candidate: c,
                components,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then(a.candidate.idle_since_ms.cmp(&b.candidate.idle_since_ms))
            .then_with(|| a.candidate.agent_id.cmp(&b.candidate.agent_id))
    });
    ranked
}

/// A readable reason for choosing `chosen` among `free` eligible agents.
pub fn skill_reason(skill: &str, chosen_score: f64, free: u64, group_label: &str) -> String {
    if free <= 1 {
        format!("{skill} skill {chosen_score:.1}, the only free {group_label} agent")
    } else {
        format!("{skill} skill {chosen_score:.1}, best of {free} free {group_label} agents")
    }
}

/// Reasons for the chosen candidate, best-weighted first: the skill line
/// ("wealth skill 9.6, best of 4 free VIP agents") then every other
/// component that added points.
pub fn reasons(
    chosen: &Ranked,
    ranked: &[Ranked],
    ctx: &Context,
    free: u64,
    group_label: &str,
) -> Vec<String> {
    let best_skill = ranked
        .iter()
        .all(|r| r.candidate.score <= chosen.candidate.score);
    let mut out = vec![if best_skill {
        skill_reason(&ctx.skill, chosen.candidate.score, free, group_label)
    } else {
        format!(
            "{}, ranked first of {free} free {group_label} agents (rank {:.2})",
            chosen.components[0].reason, chosen.total
        )
    }];
    let mut rest: Vec<&Component> = chosen.components[1..]
        .iter()
        .filter(|c| c.points > 0.0 && c.name != "idle")
        .collect();
    rest.sort_by(|a, b| b.points.total_cmp(&a.points));
    out.extend(rest.into_iter().map(|c| c.reason.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DEFAULT_POLICY, RoutingPolicy};

    fn weights() -> Weights {
        RoutingPolicy::parse(DEFAULT_POLICY)
            .expect("default policy")
            .ranking
    }

    fn c(id: &str, score: f64, idle: i64) -> Candidate {
        Candidate {
            agent_id: id.into(),
            score,
            idle_since_ms: idle,
            ..Default::default()
        }
    }

    fn ctx(now_ms: i64) -> Context {
        Context {
            skill: "wealth".into(),
            now_ms,
            ..Default::default()
        }
    }

    fn ids(r: &[Ranked]) -> Vec<&str> {
        r.iter().map(|r| r.candidate.agent_id.as_str()).collect()
    }

    #[test]
    fn best_skill_wins() {
        let ranked = rank(
            vec![c("a", 9.5, 0), c("b", 9.7, 0), c("c", 9.6, 0)],
            &ctx(0),
            &weights(),
        );
        assert_eq!(ids(&ranked), ["b", "c", "a"]);
    }

    #[test]
    fn longest_idle_breaks_ties_and_then_the_id() {
        let ranked = rank(
            vec![
                c("a", 9.0, 300),
                c("b", 9.0, 100),
                c("c", 9.0, 200),
                c("d", 9.0, 100),
            ],
            &ctx(300),
            &weights(),
        );
        assert_eq!(ids(&ranked), ["b", "d", "c", "a"]);
    }

    /// Fairness grows with time idle, on the injected clock, up to its cap.
    #[test]
    fn idle_time_counts_up_to_the_cap() {
        let w = weights();
        let minute = 60_000;
        // b is 0.2 points worse in skill but idle 10 minutes longer.
        let cands = || vec![c("a", 9.0, 10 * minute), c("b", 8.8, 0)];
        let early = rank(cands(), &ctx(10 * minute), &w);
        assert_eq!(ids(&early), ["b", "a"], "b idle 10 min: +0.5");
        // Twenty minutes later both are past the cap: skill decides again.
        let late = rank(cands(), &ctx(40 * minute), &w);
        assert_eq!(ids(&late), ["a", "b"]);
    }

    #[test]
    fn traits_count_only_when_the_contact_needs_them() {
        let w = weights();
        let mut warm = c("warm", 9.5, 0);
        warm.empathy = 9.5;
        let mut cold = c("cold", 9.6, 0);
        cold.empathy = 3.0;
        let plain = rank(vec![warm.clone(), cold.clone()], &ctx(0), &w);
        assert_eq!(ids(&plain), ["cold", "warm"]);
        let mut needy = ctx(0);
        needy.empathy_need = Some("moment of truth: card lost abroad".into());
        let ranked = rank(vec![warm, cold], &needy, &w);
        assert_eq!(ids(&ranked), ["warm", "cold"]);
        let why = reasons(&ranked[0], &ranked, &needy, 2, "VIP");
        assert_eq!(
            why[1],
            "empathy 9.5 counted (moment of truth: card lost abroad)"
        );
    }

    #[test]
    fn dialect_preferred_and_affinity_add_points() {
        let w = weights();
        let mut minnan = c("lin", 9.0, 0);
        minnan.dialects = vec!["minnan".into()];
        let mut ctx = ctx(0);
        ctx.dialect = Some("minnan".into());
        let ranked = rank(vec![c("wang", 9.4, 0), minnan.clone()], &ctx, &w);
        assert_eq!(
            ids(&ranked),
            ["lin", "wang"],
            "dialect +0.5 beats 0.4 skill"
        );
        assert!(
            reasons(&ranked[0], &ranked, &ctx, 2, "wealth")
                .contains(&"dialect minnan matched".into())
        );
        // A required dialect gives no extra points.
        ctx.dialect_required = true;
        let ranked = rank(vec![c("wang", 9.4, 0), minnan], &ctx, &w);
        assert_eq!(ids(&ranked), ["wang", "lin"]);
        let mut ctx = super::tests::ctx(0);
        ctx.preferred = vec!["b".into()];
        ctx.affinity = vec!["c".into()];
        let ranked = rank(
            vec![c("a", 9.9, 0), c("b", 8.0, 0), c("c", 9.6, 0)],
            &ctx,
            &w,
        );
        assert_eq!(ids(&ranked), ["c", "b", "a"]);
    }

    #[test]
    fn occupancy_prefers_the_less_loaded() {
        let mut busy = c("busy", 9.0, 0);
        busy.occupancy = 2.0 / 3.0;
        let ranked = rank(vec![busy, c("free", 9.0, 0)], &ctx(0), &weights());
        assert_eq!(ids(&ranked), ["free", "busy"]);
    }

    #[test]
    fn reasons_read_naturally() {
        assert_eq!(
            skill_reason("wealth", 9.6, 4, "VIP"),
            "wealth skill 9.6, best of 4 free VIP agents"
        );
        assert_eq!(
            skill_reason("cards", 7.0, 1, "cards"),
            "cards skill 7.0, the only free cards agent"
        );
        let ranked = rank(vec![c("lin", 9.6, 0), c("x", 9.5, 0)], &ctx(0), &weights());
        assert_eq!(
            reasons(&ranked[0], &ranked, &ctx(0), 4, "VIP")[0],
            "wealth skill 9.6, best of 4 free VIP agents"
        );
    }
}
