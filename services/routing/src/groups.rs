//! Requirement groups: the keys under which idle agents are indexed and
//! contacts are queued.
//!
//! A group names a skill plus, optionally, a pool and a language or dialect,
//! e.g. `wealth|p:vip|d:minnan`. An agent is indexed under every group it
//! satisfies, scored by its skill, so the candidates for a contact are the
//! top of one sorted set: the cost of a decision does not grow with the
//! number of logged-in agents.

use std::fmt;

use rapport_proto::AgentProfile;

/// A language requirement: a language, or a finer dialect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Speech {
    Language(String),
    Dialect(String),
}

/// A requirement group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub skill: String,
    pub pool: Option<String>,
    pub speech: Option<Speech>,
}

impl Group {
    /// Parses a group key as written by `Display` (best effort: unknown
    /// parts are ignored).
    pub fn parse(key: &str) -> Self {
        let mut parts = key.split('|');
        let mut group = Group {
            skill: parts.next().unwrap_or_default().to_owned(),
            pool: None,
            speech: None,
        };
        for part in parts {
            match part.split_once(':') {
                Some(("p", pool)) => group.pool = Some(pool.to_owned()),
                Some(("l", l)) => group.speech = Some(Speech::Language(l.to_owned())),
                Some(("d", d)) => group.speech = Some(Speech::Dialect(d.to_owned())),
                _ => {}
            }
        }
        group
    }

    pub fn language(&self) -> Option<&str> {
        match &self.speech {
            Some(Speech::Language(l)) => Some(l),
            _ => None,
        }
    }

    pub fn dialect(&self) -> Option<&str> {
        match &self.speech {
            Some(Speech::Dialect(d)) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.skill)?;
        if let Some(pool) = &self.pool {
            write!(f, "|p:{pool}")?;
        }
        match &self.speech {
            Some(Speech::Language(l)) => write!(f, "|l:{l}")?,
            Some(Speech::Dialect(d)) => write!(f, "|d:{d}")?,
            None => {}
        }
        Ok(())
    }
}

/// Every group an agent satisfies, with the agent's skill score in it.
///
/// For each skill: the bare skill, each pool, each language and each
/// dialect, and each pool combined with each language and dialect. The
/// count is small (skills × (1 + pools) × (1 + languages + dialects)). A
/// trainee is never indexed in the risk (specialist) pool, even if listed
/// in it: risky contacts never reach trainees.
pub fn agent_groups(agent: &AgentProfile, risk_pool: &str) -> Vec<(String, f64)> {
    let speech: Vec<Option<Speech>> = std::iter::once(None)
        .chain(
            agent
                .languages
                .iter()
                .map(|l| Some(Speech::Language(l.clone()))),
        )
        .chain(
            agent
                .dialects
                .iter()
                .map(|d| Some(Speech::Dialect(d.clone()))),
        )
        .collect();
    let pools: Vec<Option<String>> = std::iter::once(None)
        .chain(
            agent
                .pools
                .iter()
                .filter(|p| !(agent.trainee && *p == risk_pool))
                .cloned()
                .map(Some),
        )
        .collect();
    let mut skills: Vec<(&String, &f64)> = agent.skills.iter().collect();
    skills.sort_by(|a, b| a.0.cmp(b.0));
    let mut groups = Vec::with_capacity(skills.len() * pools.len() * speech.len());
    for (skill, score) in skills {
        for pool in &pools {
            for sp in &speech {
                let group = Group {
                    skill: skill.clone(),
                    pool: pool.clone(),
                    speech: sp.clone(),
                };
                groups.push((group.to_string(), *score));
            }
        }
    }
    groups
}

/// Whether an agent satisfies a group (ignoring the minimum score). Used by
/// tests to check the index against the definition.
pub fn satisfies(agent: &AgentProfile, group: &Group, risk_pool: &str) -> bool {
    agent.skills.contains_key(&group.skill)
        && group
            .pool
            .as_ref()
            .is_none_or(|p| agent.pools.contains(p) && !(agent.trainee && p == risk_pool))
        && match &group.speech {
            None => true,
            Some(Speech::Language(l)) => agent.languages.contains(l),
            Some(Speech::Dialect(d)) => agent.dialects.contains(d),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(
        skills: &[(&str, f64)],
        langs: &[&str],
        dialects: &[&str],
        pools: &[&str],
    ) -> AgentProfile {
        AgentProfile {
            agent_id: "a1".into(),
            skills: skills.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            languages: langs.iter().map(|s| s.to_string()).collect(),
            dialects: dialects.iter().map(|s| s.to_string()).collect(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn group_keys_read_naturally() {
        let g = Group {
            skill: "wealth".into(),
            pool: Some("vip".into()),
            speech: Some(Speech::Dialect("minnan".into())),
        };
        assert_eq!(g.to_string(), "wealth|p:vip|d:minnan");
        assert_eq!(Group::parse("wealth|p:vip|d:minnan"), g);
        let g = Group {
            skill: "cards".into(),
            pool: None,
            speech: Some(Speech::Language("en".into())),
        };
        assert_eq!(g.to_string(), "cards|l:en");
    }

    #[test]
    fn vip_minnan_agent_is_indexed_under_the_reference_group() {
        let a = agent(&[("wealth", 9.6)], &["zh"], &["minnan"], &["vip"]);
        let groups = agent_groups(&a, "complaints");
        assert!(groups.contains(&("wealth|p:vip|d:minnan".to_string(), 9.6)));
        assert!(groups.contains(&("wealth".to_string(), 9.6)));
        // 1 skill × (1 + 1 pool) × (1 + 1 language + 1 dialect)
        assert_eq!(groups.len(), 6);
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned)
    }

    proptest! {
        /// The index is exactly the definition: an agent is listed under a
        /// group if and only if it satisfies the group.
        #[test]
        fn indexed_iff_satisfies(
            skills in prop::collection::btree_map(name(), 0.0..10.0f64, 0..3),
            langs in prop::collection::btree_set(name(), 0..3),
            dialects in prop::collection::btree_set(name(), 0..3),
            pools in prop::collection::btree_set(name(), 0..3),
            skill in name(),
            pool in prop::option::of(name()),
            speech in prop::option::of((any::<bool>(), name())),
            trainee in any::<bool>(),
        ) {
            let a = AgentProfile {
                skills: skills.into_iter().collect(),
                languages: langs.into_iter().collect(),
                dialects: dialects.into_iter().collect(),
                pools: pools.into_iter().collect(),
                trainee,
                ..Default::default()
            };
            let group = Group {
                skill,
                pool,
                speech: speech.map(|(dialect, n)| if dialect { Speech::Dialect(n) } else { Speech::Language(n) }),
            };
            let key = group.to_string();
            // "b" is the risk pool here.
            let indexed = agent_groups(&a, "b").iter().any(|(g, _)| *g == key);
            prop_assert_eq!(indexed, satisfies(&a, &group, "b"));
            if trainee && group.pool.as_deref() == Some("b") {
                prop_assert!(!indexed, "a trainee is never in the risk pool");
            }
        }
    }
}
