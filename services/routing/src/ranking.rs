//! Ranking the idle candidates of a requirement group.
//!
//! Candidates arrive already filtered by the hard requirements (they come
//! from the group's idle index, above the minimum score). They are ranked by
//! skill score first, then by how long they have been idle (fairness), then
//! by id so the order is total and deterministic.

/// An idle agent that satisfies the contact's hard requirements.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub agent_id: String,
    /// Skill score for the contact's skill, 0..=10.
    pub score: f64,
    /// When the agent last became idle, milliseconds since the epoch.
    pub idle_since_ms: i64,
}

/// Orders candidates best first.
pub fn rank(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.idle_since_ms.cmp(&b.idle_since_ms))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
    });
    candidates
}

/// A readable reason for choosing `chosen` among `free` eligible agents.
pub fn skill_reason(skill: &str, chosen_score: f64, free: u64, group_label: &str) -> String {
    if free <= 1 {
        format!("{skill} skill {chosen_score:.1}, the only free {group_label} agent")
    } else {
        format!("{skill} skill {chosen_score:.1}, best of {free} free {group_label} agents")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, score: f64, idle: i64) -> Candidate {
        Candidate {
            agent_id: id.into(),
            score,
            idle_since_ms: idle,
        }
    }

    #[test]
    fn best_skill_wins() {
        let ranked = rank(vec![c("a", 9.5, 0), c("b", 9.7, 50), c("c", 9.6, 10)]);
        let ids: Vec<_> = ranked.iter().map(|c| c.agent_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn longest_idle_breaks_ties() {
        let ranked = rank(vec![c("a", 9.0, 300), c("b", 9.0, 100), c("c", 9.0, 200)]);
        let ids: Vec<_> = ranked.iter().map(|c| c.agent_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn id_makes_the_order_total() {
        let ranked = rank(vec![c("b", 9.0, 1), c("a", 9.0, 1)]);
        assert_eq!(ranked[0].agent_id, "a");
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
    }
}
