//! The case library: worked cases by category (escalation threats,
//! compensation demands, lost cards...), kept in
//! `data/classification/cases.toml` so agents train on them and handle
//! alike. Guidance references them by id ("CASE-ESC-001"); the library is
//! compiled into the binary and checked when it loads.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

/// The library compiled into the binary.
pub const BUILTIN_CASES: &str = include_str!("../../../data/classification/cases.toml");

/// One worked case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable reference, e.g. `CASE-ESC-001`.
    pub id: String,
    /// Categories it is filed under: needs, risk kinds, event kinds.
    pub categories: Vec<String>,
    pub title: String,
    /// What the agent did and why it worked.
    pub lesson: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryFile {
    case: Vec<Case>,
}

/// The loaded case library.
#[derive(Debug)]
pub struct CaseLibrary {
    cases: Vec<Case>,
}

/// Why a case library was refused.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("the case library is malformed: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("the case library is invalid: {0}")]
    Invalid(String),
}

static BUILTIN: LazyLock<Result<Arc<CaseLibrary>, String>> = LazyLock::new(|| {
    CaseLibrary::parse(BUILTIN_CASES)
        .map(Arc::new)
        .map_err(|e| e.to_string())
});

impl CaseLibrary {
    /// The compiled-in library, parsed once per process.
    pub fn builtin() -> Result<Arc<Self>, CasesError> {
        BUILTIN.clone().map_err(CasesError::Invalid)
    }

    /// Parses and checks a library: ids unique and of `[A-Z0-9-]`, every
    /// case filed under at least one category.
    pub fn parse(text: &str) -> Result<Self, CasesError> {
        let file: LibraryFile = toml::from_str(text)?;
        let mut ids = HashSet::new();
        for case in &file.case {
            let valid_id = !case.id.is_empty()
                && case
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if !valid_id {
                return Err(CasesError::Invalid(format!(
                    "case id {:?} must be [A-Z0-9-]",
                    case.id
                )));
            }
            if !ids.insert(case.id.as_str()) {
                return Err(CasesError::Invalid(format!(
                    "case id {} is repeated",
                    case.id
                )));
            }
            if case.categories.is_empty() || case.title.trim().is_empty() {
                return Err(CasesError::Invalid(format!(
                    "case {} needs a title and at least one category",
                    case.id
                )));
            }
        }
        Ok(Self { cases: file.case })
    }

    /// Every case.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// Up to `limit` case ids for the categories, most specific first: the
    /// categories are given in priority order, and a case matching more of
    /// them ranks higher.
    pub fn refs(&self, categories: &[&str], limit: usize) -> Vec<String> {
        let mut scored: Vec<(usize, usize, &str)> = self
            .cases
            .iter()
            .filter_map(|case| {
                let matched: Vec<usize> = categories
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| case.categories.iter().any(|k| k == *c))
                    .map(|(i, _)| i)
                    .collect();
                let first = *matched.first()?;
                Some((first, usize::MAX - matched.len(), case.id.as_str()))
            })
            .collect();
        scored.sort_unstable();
        scored
            .into_iter()
            .take(limit)
            .map(|(_, _, id)| id.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn the_builtin_library_is_valid_and_filed_under_known_categories() {
        let library = CaseLibrary::builtin().expect("valid library");
        assert!(library.cases().len() >= 10);
        let policy = Policy::builtin().expect("policy");
        let known = crate::policy::categories(&policy.moment().events);
        for case in library.cases() {
            for category in &case.categories {
                assert!(known.contains(category), "{}: {category}", case.id);
            }
        }
        // Every risk kind and need has at least one case to learn from.
        for category in [
            "escalation_threat",
            "solutions_exhausted",
            "compensation",
            "card_lost",
        ] {
            assert!(!library.refs(&[category], 1).is_empty(), "{category}");
        }
    }

    #[test]
    fn refs_prefer_the_first_category_and_broader_matches() {
        let library = CaseLibrary::parse(
            r#"
[[case]]
id = "A-1"
categories = ["compensation"]
title = "a"
lesson = "a"
[[case]]
id = "E-1"
categories = ["escalation_threat"]
title = "e"
lesson = "e"
[[case]]
id = "E-2"
categories = ["escalation_threat", "solutions_exhausted"]
title = "e2"
lesson = "e2"
"#,
        )
        .expect("parses");
        assert_eq!(
            library.refs(
                &["escalation_threat", "solutions_exhausted", "compensation"],
                2
            ),
            ["E-2", "E-1"]
        );
        assert_eq!(library.refs(&["just_talk"], 3), Vec::<String>::new());
        assert!(
            CaseLibrary::parse(
                "[[case]]\nid = \"bad id\"\ncategories=[\"x\"]\ntitle=\"t\"\nlesson=\"l\"\n"
            )
            .is_err()
        );
    }
}
