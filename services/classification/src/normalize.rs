//! How free-form profile values (cities, languages, dialects) are turned into
//! the keys the policy is matched by.
//!
//! Profiles are written by CRM staff and synced from other systems, so the
//! same place or dialect arrives spelled many ways ("Xiamen", " xiamen city",
//! "厦门市"). The policy file is normalized with the very same functions when
//! it is loaded, so a match never depends on how either side was typed.

/// Suffixes that do not change which place is meant. Stripped once, longest
/// first, after lowercasing.
const PLACE_SUFFIXES: [&str; 4] = [" province", " city", "省", "市"];

/// The key a city or region is matched by: whitespace collapsed, lowercase,
/// one administrative suffix removed. Empty when nothing is left.
pub(crate) fn place_key(raw: &str) -> String {
    let collapsed = collapse_whitespace(raw).to_lowercase();
    for suffix in PLACE_SUFFIXES {
        if let Some(stripped) = collapsed.strip_suffix(suffix) {
            return stripped.trim_end().to_owned();
        }
    }
    collapsed
}

/// The key a dialect as written in a profile is matched against the
/// policy's dialect names and aliases by: whitespace collapsed, lowercase.
pub(crate) fn dialect_key(raw: &str) -> String {
    collapse_whitespace(raw).to_lowercase()
}

/// A dialect key as a routing attribute name (`[a-z0-9_-]`, at most 32
/// characters), or `None` when it cannot be one. Agents are indexed by these
/// names in Redis, so classification never emits anything else.
pub(crate) fn dialect_name(key: &str) -> Option<String> {
    let name = key.replace(' ', "_");
    rapport_kit::validate::name("dialect", &name)
        .ok()
        .map(|()| name)
}

/// The primary language subtag of a BCP 47 tag, lowercase ("zh-CN" → "zh"),
/// or `None` when the value is not a language tag. Agents are matched on the
/// primary language only; script and region subtags do not change who can
/// take the call.
pub(crate) fn language_tag(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.len() > MAX_LANGUAGE_TAG_LEN {
        return None;
    }
    let primary = trimmed.split(['-', '_']).next().unwrap_or_default();
    // BCP 47: 2–3 letters (ISO 639) or 5–8 letters (registered languages).
    let valid =
        matches!(primary.len(), 2..=3 | 5..=8) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    valid.then(|| primary.to_ascii_lowercase())
}

/// Longest language tag accepted (RFC 5646 recommends supporting at least
/// 35 characters).
pub(crate) const MAX_LANGUAGE_TAG_LEN: usize = 35;

fn collapse_whitespace(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_ignore_case_spacing_and_administrative_suffixes() {
        assert_eq!(place_key("Xiamen"), "xiamen");
        assert_eq!(place_key("  XIAMEN   City "), "xiamen");
        assert_eq!(place_key("厦门市"), "厦门");
        assert_eq!(place_key("四川省"), "四川");
        assert_eq!(place_key("Hong   Kong"), "hong kong");
        assert_eq!(place_key("Sichuan Province"), "sichuan");
        assert_eq!(place_key("市"), "");
        assert_eq!(place_key("   "), "");
    }

    #[test]
    fn dialects_become_routing_names_or_nothing() {
        assert_eq!(dialect_key("  Min   Nan "), "min nan");
        assert_eq!(dialect_name("min nan").as_deref(), Some("min_nan"));
        assert_eq!(dialect_name("闽南话"), None);
        assert_eq!(dialect_name(""), None);
        assert_eq!(dialect_name(&"x".repeat(33)), None);
    }

    #[test]
    fn language_tags_keep_the_primary_subtag() {
        assert_eq!(language_tag("zh").as_deref(), Some("zh"));
        assert_eq!(language_tag(" zh-Hant-HK ").as_deref(), Some("zh"));
        assert_eq!(language_tag("EN_us").as_deref(), Some("en"));
        assert_eq!(language_tag("yue").as_deref(), Some("yue"));
        assert_eq!(language_tag(""), None);
        assert_eq!(language_tag("中文"), None);
        assert_eq!(language_tag("e"), None);
        assert_eq!(language_tag("english language"), None);
        assert_eq!(language_tag(&format!("en-{}", "a".repeat(40))), None);
    }
}
