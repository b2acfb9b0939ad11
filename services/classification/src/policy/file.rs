//! The policy file as written, and its validation into a [`Policy`].
//!
//! Every struct refuses unknown keys, so a typo ("fator = 0.8") is an error
//! with its line rather than a silently ignored setting. Values that are
//! range-checked are read as [`Spanned`], so a problem can name its line
//! too. Checks collect every problem before failing: an operator fixes the
//! file in one pass.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use toml::Spanned;

use super::analysis::{
    ChurnFile, EmotionFile, GuidanceFile, MomentFile, NeedsFile, RiskFile, TextFile,
};
use super::{
    Dialect, LanguagePolicy, PatiencePolicy, Policy, PolicyError, Problem, Thresholds, TierPolicy,
};
use crate::cases::CaseLibrary;
use crate::model::TextModel;
use crate::normalize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: Spanned<String>,
    tiers: TiersFile,
    language: LanguageFile,
    patience: PatienceFile,
    text: TextFile,
    needs: NeedsFile,
    emotion: EmotionFile,
    moment_of_truth: MomentFile,
    risk: RiskFile,
    churn: ChurnFile,
    guidance: GuidanceFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TiersFile {
    vip: Spanned<ThresholdsFile>,
    preferred: Spanned<ThresholdsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    assets: Option<Spanned<i64>>,
    contribution: Option<Spanned<i64>>,
    potential_value: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageFile {
    default: Spanned<String>,
    #[serde(default)]
    dialects: BTreeMap<Spanned<String>, DialectFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectFile {
    language: Spanned<String>,
    places: Vec<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatienceFile {
    default_s: Spanned<u32>,
    factor: Spanned<f64>,
    floor_s: Spanned<u32>,
    min_evidence: Spanned<u32>,
    lookback_days: Spanned<u32>,
}

/// Longest policy version string; it is echoed in every classification.
const MAX_VERSION_LEN: usize = 64;
/// Longest patience the policy may set: an hour. Anything longer is a unit
/// mistake (minutes or milliseconds typed as seconds).
const MAX_PATIENCE_S: u32 = 3600;
/// The profile summary carries at most 20 upsetting waits.
const MAX_MIN_EVIDENCE: u32 = 20;
const MAX_LOOKBACK_DAYS: u32 = 3650;

pub(super) fn parse(source: &str) -> Result<Policy, PolicyError> {
    let file: PolicyFile = toml::from_str(source).map_err(|e| PolicyError::Syntax {
        line: e.span().map(|span| line_of(source, span.start)),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let model = TextModel::builtin().map_err(PolicyError::Model)?;
    let cases = CaseLibrary::builtin().map_err(PolicyError::Cases)?;
    let mut check = Checker {
        source,
        problems: Vec::new(),
    };
    let moment = check.moment(&file.moment_of_truth);
    let categories = super::analysis::categories(&moment.events);
    let policy = Policy {
        version: check.version(&file.version),
        tiers: check.tiers(&file.tiers),
        language: check.language(&file.language),
        patience: check.patience(&file.patience),
        text: check.text(&file.text),
        needs: check.needs(&file.needs),
        emotion: check.emotion(&file.emotion),
        risk: check.risk(&file.risk),
        churn: check.churn(&file.churn),
        guidance: check.guidance(&file.guidance, &categories),
        moment,
        model,
        cases,
    };
    if check.problems.is_empty() {
        Ok(policy)
    } else {
        Err(PolicyError::Invalid {
            problems: check.problems,
        })
    }
}

/// 1-based line of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(super) struct Checker<'a> {
    pub(super) source: &'a str,
    pub(super) problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem<T>(
        &mut self,
        at: &Spanned<T>,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) {
        self.problems.push(Problem {
            line: line_of(self.source, at.span().start),
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn version(&mut self, version: &Spanned<String>) -> String {
        let value = version.get_ref().trim();
        if value.is_empty() {
            self.problem(version, "version", "must not be empty");
        } else if value.len() > MAX_VERSION_LEN {
            self.problem(
                version,
                "version",
                format!("must be at most {MAX_VERSION_LEN} bytes"),
            );
        } else if value.chars().any(char::is_control) {
            self.problem(version, "version", "must not contain control characters");
        }
        value.to_owned()
    }

    fn tiers(&mut self, tiers: &TiersFile) -> TierPolicy {
        let vip = self.thresholds(&tiers.vip, "tiers.vip");
        let preferred = self.thresholds(&tiers.preferred, "tiers.preferred");
        // A PREFERRED threshold above the VIP one would make that measure
        // skip PREFERRED entirely: almost certainly a typo.
        let pairs = [
            ("assets", &tiers.preferred.get_ref().assets, vip.assets),
            (
                "contribution",
                &tiers.preferred.get_ref().contribution,
                vip.contribution,
            ),
            (
                "potential_value",
                &tiers.preferred.get_ref().potential_value,
                vip.potential_value,
            ),
        ];
        for (measure, preferred_value, vip_value) in pairs {
            if let (Some(p), Some(v)) = (preferred_value, vip_value)
                && *p.get_ref() > v
            {
                self.problem(
                    p,
                    format!("tiers.preferred.{measure}"),
                    format!(
                        "= {} is above the VIP threshold {v}; PREFERRED must not exceed VIP",
                        p.get_ref()
                    ),
                );
            }
        }
        TierPolicy { vip, preferred }
    }

    fn thresholds(&mut self, table: &Spanned<ThresholdsFile>, key: &str) -> Thresholds {
        let t = table.get_ref();
        let mut measure = |value: &Option<Spanned<i64>>, name: &str| {
            let v = value.as_ref()?;
            if *v.get_ref() <= 0 {
                self.problem(
                    v,
                    format!("{key}.{name}"),
                    format!(
                        "= {} is out of range: must be > 0 (leave the key out to disable it)",
                        v.get_ref()
                    ),
                );
            }
            Some(*v.get_ref())
        };
        let thresholds = Thresholds {
            assets: measure(&t.assets, "assets"),
            contribution: measure(&t.contribution, "contribution"),
            potential_value: measure(&t.potential_value, "potential_value"),
        };
        if thresholds.assets.is_none()
            && thresholds.contribution.is_none()
            && thresholds.potential_value.is_none()
        {
            self.problem(
                table,
                key,
                "sets no threshold: set at least one of assets, contribution, potential_value",
            );
        }
        thresholds
    }

    fn language(&mut self, language: &LanguageFile) -> LanguagePolicy {
        let default = self.language_tag(&language.default, "language.default");
        let mut dialects = Vec::new();
        let mut by_place: HashMap<String, usize> = HashMap::new();
        let mut by_alias: HashMap<String, usize> = HashMap::new();
        for (name, dialect) in &language.dialects {
            let key = format!("language.dialects.{}", name.get_ref());
            let index = dialects.len();
            if normalize::dialect_name(name.get_ref()).as_deref() != Some(name.get_ref().as_str()) {
                self.problem(
                    name,
                    key.clone(),
                    "is not a dialect name: use 1-32 lowercase letters, digits, _ or -",
                );
            }
            let dialect_language = self.language_tag(&dialect.language, &format!("{key}.language"));
            if dialect.places.is_empty() {
                self.problem(
                    name,
                    format!("{key}.places"),
                    "must list at least one place",
                );
            }
            dialects.push(Dialect {
                name: name.get_ref().clone(),
                language: dialect_language,
            });

            // The name itself is an alias, so a profile saying "Minnan" maps.
            let names = std::iter::once(name).chain(&dialect.aliases);
            for alias in names {
                let alias_key = normalize::dialect_key(alias.get_ref());
                if alias_key.is_empty() {
                    self.problem(
                        alias,
                        format!("{key}.aliases"),
                        "must not contain empty names",
                    );
                    continue;
                }
                if let Some(&other) = by_alias.get(&alias_key)
                    && other != index
                {
                    let other = dialects.get(other).map_or("", |d| d.name.as_str());
                    self.problem(
                        alias,
                        format!("{key}.aliases"),
                        format!("{:?} already names dialect {other}", alias.get_ref()),
                    );
                    continue;
                }
                by_alias.insert(alias_key, index);
            }

            for place in &dialect.places {
                let place_key = normalize::place_key(place.get_ref());
                if place_key.is_empty() {
                    self.problem(
                        place,
                        format!("{key}.places"),
                        "must not contain empty names",
                    );
                    continue;
                }
                if let Some(&other) = by_place.get(&place_key)
                    && other != index
                {
                    // One place, two dialects: inference would depend on the
                    // order of the file.
                    let other = dialects.get(other).map_or("", |d| d.name.as_str());
                    self.problem(
                        place,
                        format!("{key}.places"),
                        format!(
                            "{:?} is already a place of dialect {other}",
                            place.get_ref()
                        ),
                    );
                    continue;
                }
                by_place.insert(place_key, index);
            }
        }
        LanguagePolicy {
            default,
            dialects,
            by_place,
            by_alias,
        }
    }

    fn language_tag(&mut self, value: &Spanned<String>, key: &str) -> String {
        match normalize::language_tag(value.get_ref()) {
            Some(tag) if tag == value.get_ref().as_str() => tag,
            _ => {
                self.problem(
                    value,
                    key,
                    format!(
                        "= {:?} is not a language: use a lowercase primary language tag such as \"zh\" or \"en\"",
                        value.get_ref()
                    ),
                );
                value.get_ref().clone()
            }
        }
    }

    fn patience(&mut self, p: &PatienceFile) -> PatiencePolicy {
        let default_s = *p.default_s.get_ref();
        let factor = *p.factor.get_ref();
        let floor_s = *p.floor_s.get_ref();
        let min_evidence = *p.min_evidence.get_ref();
        let lookback_days = *p.lookback_days.get_ref();

        if !(1..=MAX_PATIENCE_S).contains(&default_s) {
            self.problem(
                &p.default_s,
                "patience.default_s",
                format!("= {default_s} is out of range: must be 1..={MAX_PATIENCE_S} seconds"),
            );
        }
        // NaN fails both comparisons, so it is refused too.
        if !(factor > 0.0 && factor <= 1.0) {
            self.problem(
                &p.factor,
                "patience.factor",
                format!("= {factor} is out of range: must be > 0 and <= 1"),
            );
        }
        if floor_s < 1 || floor_s > default_s {
            self.problem(
                &p.floor_s,
                "patience.floor_s",
                format!(
                    "= {floor_s} is out of range: must be at least 1 and at most patience.default_s ({default_s})"
                ),
            );
        }
        if !(1..=MAX_MIN_EVIDENCE).contains(&min_evidence) {
            self.problem(
                &p.min_evidence,
                "patience.min_evidence",
                format!("= {min_evidence} is out of range: must be 1..={MAX_MIN_EVIDENCE}"),
            );
        }
        if !(1..=MAX_LOOKBACK_DAYS).contains(&lookback_days) {
            self.problem(
                &p.lookback_days,
                "patience.lookback_days",
                format!("= {lookback_days} is out of range: must be 1..={MAX_LOOKBACK_DAYS} days"),
            );
        }
        PatiencePolicy {
            default_s,
            factor,
            floor_s,
            min_evidence,
            lookback_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BUILTIN_POLICY;

    /// A minimal valid policy; tests replace one line to break it.
    const MINIMAL: &str = r#"version = "test-1"

[tiers.vip]
assets = 5_000_000

[tiers.preferred]
assets = 500_000

[language]
default = "zh"

[language.dialects.minnan]
language = "zh"
places = ["Xiamen", "厦门"]

[patience]
default_s = 90
factor = 0.8
floor_s = 10
min_evidence = 1
lookback_days = 365
"#;

    /// The minimal policy followed by the built-in text sections, which
    /// these tests do not vary (their own tests are in `analysis`).
    fn valid() -> String {
        let tail = BUILTIN_POLICY
            .find("\n[text]\n")
            .map_or("", |i| &BUILTIN_POLICY[i..]);
        format!("{MINIMAL}{tail}")
    }

    fn with(from: &str, to: &str) -> String {
        let valid = valid();
        assert!(MINIMAL.contains(from), "test fixture lacks {from:?}");
        valid.replacen(from, to, 1)
    }

    fn invalid(source: &str) -> Vec<Problem> {
        match Policy::parse(source) {
            Err(PolicyError::Invalid { problems }) => problems,
            other => panic!("expected range problems, got {other:?}"),
        }
    }

    #[test]
    fn the_builtin_policy_is_valid() {
        let policy = Policy::parse(BUILTIN_POLICY).expect("built-in policy parses");
        assert!(!policy.version().is_empty());
        assert_eq!(policy.patience().default_s, 90);
        assert_eq!(policy.tiers().vip.assets, Some(5_000_000));
        assert_eq!(policy.language().default_language(), "zh");
        let minnan = policy.language().dialect_of_place("厦门").expect("Xiamen");
        assert_eq!(minnan.name, "minnan");
    }

    #[test]
    fn a_minimal_policy_parses() {
        let policy = Policy::parse(&valid()).expect("valid");
        assert_eq!(policy.version(), "test-1");
        assert_eq!(policy.tiers().vip.contribution, None);
        assert_eq!(policy.patience().factor, 0.8);
        assert_eq!(policy.language().dialects().len(), 1);
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = Policy::parse(&with("factor = 0.8", "fator = 0.8")).expect_err("typo");
        assert!(matches!(err, PolicyError::Syntax { .. }), "{err:?}");
        assert_eq!(err.line(), Some(18));
        let message = err.to_string();
        assert!(message.contains("line 18"), "{message}");
        assert!(message.contains("fator"), "{message}");
    }

    #[test]
    fn an_unknown_section_is_refused() {
        let err =
            Policy::parse(&format!("{}\n[wishes]\nweight = 1\n", valid())).expect_err("unknown");
        assert!(err.to_string().contains("wishes"), "{err}");
        assert!(err.line().is_some());
    }

    #[test]
    fn a_missing_section_is_refused() {
        let source = valid().replace("[patience]", "[patience_typo]");
        let err = Policy::parse(&source).expect_err("missing");
        assert!(matches!(err, PolicyError::Syntax { .. }));
    }

    #[test]
    fn a_wrong_type_is_refused_with_its_line() {
        let err = Policy::parse(&with("default_s = 90", "default_s = \"90\"")).expect_err("type");
        assert_eq!(err.line(), Some(17));
        let err = Policy::parse(&with("floor_s = 10", "floor_s = -10")).expect_err("negative");
        assert_eq!(err.line(), Some(19));
    }

    #[test]
    fn an_out_of_range_factor_is_refused_naming_key_and_line() {
        let problems = invalid(&with("factor = 0.8", "factor = 1.5"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "patience.factor");
        assert_eq!(problems[0].line, 18);
        let message = PolicyError::Invalid { problems }.to_string();
        assert!(
            message.starts_with("line 18: patience.factor = 1.5"),
            "{message}"
        );

        assert_eq!(
            invalid(&with("factor = 0.8", "factor = 0.0"))[0].key,
            "patience.factor"
        );
        assert_eq!(
            invalid(&with("factor = 0.8", "factor = nan"))[0].key,
            "patience.factor"
        );
        assert!(Policy::parse(&with("factor = 0.8", "factor = 1")).is_ok());
    }

    #[test]
    fn patience_bounds_must_be_consistent() {
        let problems = invalid(&with("floor_s = 10", "floor_s = 100"));
        assert_eq!(problems[0].key, "patience.floor_s");
        assert_eq!(
            invalid(&with("floor_s = 10", "floor_s = 0"))[0].key,
            "patience.floor_s"
        );
        assert_eq!(
            invalid(&with("default_s = 90", "default_s = 36000"))[0].key,
            "patience.default_s"
        );
        assert_eq!(
            invalid(&with("min_evidence = 1", "min_evidence = 0"))[0].key,
            "patience.min_evidence"
        );
        assert_eq!(
            invalid(&with("lookback_days = 365", "lookback_days = 0"))[0].key,
            "patience.lookback_days"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let source =
            with("factor = 0.8", "factor = 2.0").replace("min_evidence = 1", "min_evidence = 99");
        let problems = invalid(&source);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["patience.factor", "patience.min_evidence"]);
    }

    #[test]
    fn tier_thresholds_are_checked() {
        let problems = invalid(&with("assets = 500_000", "assets = 9_000_000"));
        assert_eq!(problems[0].key, "tiers.preferred.assets");
        assert_eq!(problems[0].line, 7);

        let problems = invalid(&with("assets = 5_000_000", "assets = 0"));
        assert_eq!(problems[0].key, "tiers.vip.assets");

        let problems = invalid(&with("assets = 5_000_000", ""));
        assert_eq!(problems[0].key, "tiers.vip");
    }

    #[test]
    fn languages_and_dialects_are_checked() {
        let problems = invalid(&with("default = \"zh\"", "default = \"Chinese\""));
        assert_eq!(problems[0].key, "language.default");
        assert_eq!(problems[0].line, 10);

        let problems = invalid(&with("dialects.minnan]", "dialects.\"Min Nan\"]"));
        assert_eq!(problems[0].key, "language.dialects.Min Nan");

        let source = format!(
            "{}\n[language.dialects.other]\nlanguage = \"zh\"\nplaces = [\"xiamen city\"]\n",
            valid()
        );
        let problems = invalid(&source);
        assert_eq!(problems[0].key, "language.dialects.other.places");
        assert!(problems[0].problem.contains("minnan"), "{problems:?}");

        let problems = invalid(&with("places = [\"Xiamen\", \"厦门\"]", "places = []"));
        assert_eq!(problems[0].key, "language.dialects.minnan.places");

        let source = format!(
            "{}\n[language.dialects.other]\nlanguage = \"zh\"\nplaces = [\"X\"]\naliases = [\"MinNan\"]\n",
            valid()
        );
        let problems = invalid(&source);
        assert_eq!(problems[0].key, "language.dialects.other.aliases");
    }

    #[test]
    fn version_must_be_set() {
        let problems = invalid(&with("version = \"test-1\"", "version = \" \""));
        assert_eq!(problems[0].key, "version");
        assert_eq!(problems[0].line, 1);
    }
}
