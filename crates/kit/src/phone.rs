//! Phone numbers: every service normalizes to E.164 the same way.

use std::str::FromStr as _;

/// A default region that is not an ISO 3166 code the phone library knows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown phone region {0:?}; expected an ISO 3166 code such as CN or US")]
pub struct UnknownRegion(String);

/// The region numbers without a country code are parsed in.
#[derive(Debug, Clone, Copy)]
pub struct Region(phonenumber::country::Id);

impl Region {
    /// Parses an ISO 3166 alpha-2 code, e.g. `CN`.
    pub fn parse(code: &str) -> Result<Self, UnknownRegion> {
        phonenumber::country::Id::from_str(&code.to_ascii_uppercase())
            .map(Self)
            .map_err(|_| UnknownRegion(code.to_owned()))
    }
}

/// Normalizes a phone number in any common format to E.164
/// (`+8613800000000`). Numbers starting with `+` carry their own country;
/// others are read in `region`. Invalid numbers are refused.
pub fn normalize(region: Region, input: &str) -> Result<String, &'static str> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("must not be empty");
    }
    if trimmed.len() > 32 {
        return Err("must be at most 32 characters");
    }
    let number =
        phonenumber::parse(Some(region.0), trimmed).map_err(|_| "is not a phone number")?;
    if !phonenumber::is_valid(&number) {
        return Err("is not a valid phone number");
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_normalize_to_e164() {
        let cn = Region::parse("CN").expect("known region");
        assert_eq!(
            normalize(cn, "138 0013 8000").as_deref(),
            Ok("+8613800138000")
        );
        assert_eq!(
            normalize(cn, "+86 138-0013-8000").as_deref(),
            Ok("+8613800138000")
        );
        assert_eq!(
            normalize(cn, "+1 (415) 555-2671").as_deref(),
            Ok("+14155552671")
        );
    }

    #[test]
    fn garbage_is_refused() {
        let cn = Region::parse("cn").expect("case-insensitive");
        assert!(normalize(cn, "").is_err());
        assert!(normalize(cn, "not a phone").is_err());
        assert!(normalize(cn, "123").is_err());
        assert!(normalize(cn, &"1".repeat(40)).is_err());
        assert!(Region::parse("XX").is_err());
    }
}
