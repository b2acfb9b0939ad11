//! Language and dialect to match: what the agent must speak.
//!
//! Language: the profile's language, else the customer's preferred
//! language, else the IVR's language hint, else the policy default — the
//! record a customer or CRM staff set beats a guess from this one call.
//!
//! Dialect: the profile's dialect when recorded (it is what the customer
//! told us), else inferred from the profile's city, then its region, using
//! the policy's place lists (Xiamen → minnan). An inferred dialect is only
//! used when it is a dialect of the customer's language: a Xiamen customer
//! who prefers English must not require a Minnan speaker.

use rapport_proto::Customer;

use super::Reasoned;
use crate::normalize;
use crate::policy::LanguagePolicy;

/// What the agent must speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageMatch {
    /// Primary language tag, e.g. `zh`.
    pub language: String,
    /// Dialect routing name, e.g. `minnan`, if any.
    pub dialect: Option<String>,
}

/// Resolves language and dialect. `customer` is `None` for an unknown
/// caller; `hint` is the IVR's language hint (may be empty).
pub fn language(
    policy: &LanguagePolicy,
    customer: Option<&Customer>,
    hint: &str,
) -> Reasoned<LanguageMatch> {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();

    let profile_language = customer.map_or("", |c| c.language.as_str());
    let preferred_language = customer
        .and_then(|c| c.preferences.as_ref())
        .map_or("", |p| p.language.as_str());
    let candidates = [
        (profile_language, "profile"),
        (preferred_language, "preferences"),
        (hint, "IVR language hint"),
    ];
    let mut language = None;
    for (raw, source) in candidates {
        if raw.trim().is_empty() {
            continue;
        }
        match normalize::language_tag(raw) {
            Some(tag) => {
                reasons.push(format!("language {tag} from {source}"));
                language = Some(tag);
                break;
            }
            None => notes.push(format!(
                "{source} language {raw:?} is not a language tag, ignored"
            )),
        }
    }
    let language = language.unwrap_or_else(|| {
        let default = policy.default_language().to_owned();
        reasons.push(format!("language {default} by policy default"));
        default
    });

    let dialect = match customer {
        None => {
            reasons.push("no dialect (unknown caller)".to_owned());
            None
        }
        Some(customer) => recorded_dialect(policy, customer, &mut reasons, &mut notes)
            .or_else(|| inferred_dialect(policy, customer, &language, &mut reasons, &mut notes)),
    };

    reasons.append(&mut notes);
    Reasoned::new(LanguageMatch { language, dialect }, reasons.join("; "))
}

/// The dialect recorded in the profile, mapped through the policy's aliases
/// ("闽南话" → minnan). A dialect the policy does not list is still used
/// when it is a valid routing name: agents may be tagged with it.
fn recorded_dialect(
    policy: &LanguagePolicy,
    customer: &Customer,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<String> {
    let raw = customer.dialect.trim();
    if raw.is_empty() {
        return None;
    }
    let key = normalize::dialect_key(raw);
    if let Some(dialect) = policy.dialect_named(&key) {
        if dialect.name == key {
            reasons.push(format!("dialect {} from profile", dialect.name));
        } else {
            reasons.push(format!("dialect {} from profile ({raw:?})", dialect.name));
        }
        return Some(dialect.name.clone());
    }
    match normalize::dialect_name(&key) {
        Some(name) => {
            reasons.push(format!("dialect {name} from profile"));
            Some(name)
        }
        None => {
            notes.push(format!(
                "profile dialect {raw:?} is not a known dialect or routing name, ignored"
            ));
            None
        }
    }
}

/// The dialect of the customer's city, else region.
fn inferred_dialect(
    policy: &LanguagePolicy,
    customer: &Customer,
    language: &str,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<String> {
    let places = [
        ("city", customer.city.trim()),
        ("region", customer.region.trim()),
    ];
    let mut looked_at = Vec::new();
    for (field, raw) in places {
        let key = normalize::place_key(raw);
        if key.is_empty() {
            continue;
        }
        looked_at.push(format!("{field} {raw}"));
        let Some(dialect) = policy.dialect_of_place(&key) else {
            continue;
        };
        if dialect.language != language {
            notes.push(format!(
                "{field} {raw} suggests dialect {} of language {}, not used for language {language}",
                dialect.name, dialect.language
            ));
            reasons.push("no dialect".to_owned());
            return None;
        }
        reasons.push(format!(
            "dialect {} inferred from {field} {raw}",
            dialect.name
        ));
        return Some(dialect.name.clone());
    }
    if looked_at.is_empty() {
        reasons.push("no dialect on record and no city or region to infer one from".to_owned());
    } else {
        reasons.push(format!(
            "no dialect on record or known for {}",
            looked_at.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use rapport_proto::Preferences;

    use super::*;
    use crate::policy::Policy;

    fn policy() -> Policy {
        Policy::builtin().expect("built-in policy")
    }

    fn from(city: &str, region: &str) -> Customer {
        Customer {
            city: city.into(),
            region: region.into(),
            ..Customer::default()
        }
    }

    fn resolve(customer: Option<&Customer>, hint: &str) -> Reasoned<LanguageMatch> {
        language(policy().language(), customer, hint)
    }

    #[test]
    fn xiamen_means_minnan() {
        let result = resolve(Some(&from("Xiamen", "Fujian")), "");
        assert_eq!(result.value.language, "zh");
        assert_eq!(result.value.dialect.as_deref(), Some("minnan"));
        assert_eq!(
            result.reason,
            "language zh by policy default; dialect minnan inferred from city Xiamen"
        );
    }

    #[test]
    fn dialects_are_inferred_from_chinese_and_differently_cased_city_names() {
        let cases = [
            ("厦门", "minnan"),
            ("厦门市", "minnan"),
            ("泉州", "minnan"),
            ("zhangzhou", "minnan"),
            ("GUANGZHOU", "cantonese"),
            ("深圳市", "cantonese"),
            ("Hong Kong", "cantonese"),
            ("香港", "cantonese"),
            ("shanghai", "wu"),
            ("苏州", "wu"),
            ("Hangzhou City", "wu"),
            ("成都", "sichuanese"),
            ("Chongqing", "sichuanese"),
        ];
        for (city, dialect) in cases {
            let result = resolve(Some(&from(city, "")), "");
            assert_eq!(result.value.dialect.as_deref(), Some(dialect), "{city}");
            assert!(result.reason.contains(city.trim()), "{}", result.reason);
        }
    }

    #[test]
    fn the_region_is_used_when_the_city_says_nothing() {
        let result = resolve(Some(&from("Mianzhu", "四川省")), "");
        assert_eq!(result.value.dialect.as_deref(), Some("sichuanese"));
        assert!(result.reason.contains("inferred from region 四川省"));
        // A province with several dialects infers none.
        let result = resolve(Some(&from("Fuzhou", "Fujian")), "");
        assert_eq!(result.value.dialect, None);
        assert!(
            result
                .reason
                .contains("no dialect on record or known for city Fuzhou, region Fujian")
        );
    }

    #[test]
    fn an_explicit_dialect_wins_over_the_city() {
        let customer = Customer {
            dialect: "Cantonese".into(),
            ..from("Xiamen", "")
        };
        let result = resolve(Some(&customer), "");
        assert_eq!(result.value.dialect.as_deref(), Some("cantonese"));
        assert!(result.reason.contains("dialect cantonese from profile"));
    }

    #[test]
    fn dialect_aliases_map_to_routing_names() {
        let customer = Customer {
            dialect: "闽南话".into(),
            ..Customer::default()
        };
        let result = resolve(Some(&customer), "");
        assert_eq!(result.value.dialect.as_deref(), Some("minnan"));
        assert!(
            result
                .reason
                .contains("dialect minnan from profile (\"闽南话\")")
        );

        let unlisted = Customer {
            dialect: "Hunanese".into(),
            ..Customer::default()
        };
        assert_eq!(
            resolve(Some(&unlisted), "").value.dialect.as_deref(),
            Some("hunanese")
        );

        let garbage = Customer {
            dialect: "湘语!".into(),
            ..from("Xiamen", "")
        };
        let result = resolve(Some(&garbage), "");
        assert_eq!(result.value.dialect.as_deref(), Some("minnan"));
        assert!(result.reason.contains("ignored"), "{}", result.reason);
    }

    #[test]
    fn language_comes_from_profile_then_preferences_then_hint_then_default() {
        let with_all = Customer {
            language: "zh-CN".into(),
            preferences: Some(Preferences {
                language: "en".into(),
                ..Preferences::default()
            }),
            ..Customer::default()
        };
        let result = resolve(Some(&with_all), "fr");
        assert_eq!(result.value.language, "zh");
        assert!(result.reason.starts_with("language zh from profile"));

        let preferences_only = Customer {
            language: String::new(),
            ..with_all.clone()
        };
        assert_eq!(resolve(Some(&preferences_only), "fr").value.language, "en");
        assert_eq!(
            resolve(Some(&Customer::default()), "fr").value.language,
            "fr"
        );
        assert_eq!(resolve(None, "en-GB").value.language, "en");
        assert_eq!(resolve(None, "").value.language, "zh");
    }

    #[test]
    fn an_inferred_dialect_must_belong_to_the_language() {
        let customer = Customer {
            language: "en".into(),
            ..from("Xiamen", "")
        };
        let result = resolve(Some(&customer), "");
        assert_eq!(result.value.language, "en");
        assert_eq!(result.value.dialect, None);
        assert!(
            result.reason.contains("not used for language en"),
            "{}",
            result.reason
        );
    }

    #[test]
    fn invalid_languages_are_skipped_with_a_note() {
        let customer = Customer {
            language: "中文".into(),
            ..Customer::default()
        };
        let result = resolve(Some(&customer), "");
        assert_eq!(result.value.language, "zh");
        assert!(
            result
                .reason
                .contains("profile language \"中文\" is not a language tag")
        );
    }

    #[test]
    fn an_unknown_caller_gets_no_dialect() {
        let result = resolve(None, "");
        assert_eq!(result.value.dialect, None);
        assert_eq!(
            result.reason,
            "language zh by policy default; no dialect (unknown caller)"
        );
    }
}
