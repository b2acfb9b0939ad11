//! Phone number normalization: every number is stored and looked up in
//! E.164 form, so "138 0000 0000", "+86 138-0000-0000" and "008613800000000"
//! find the same customer.
//!
//! Errors never contain the number itself: they end up in statuses and
//! logs, and phone numbers must not.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;

/// The region numbers without a leading `+` are parsed in (ISO 3166-1
/// alpha-2, e.g. `CN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// China, the default region of the service.
    pub const CN: Region = Region(country::Id::CN);

    /// The ISO code, e.g. `CN`.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A region code the phone metadata does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phone region {0:?}: expected an ISO 3166-1 alpha-2 country code such as CN or US")]
pub struct UnknownRegion(String);

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_uppercase();
        let id = country::Id::from_str(&code).map_err(|_| UnknownRegion(s.to_owned()))?;
        // The enum lists CLDR regions; only accept those the bundled
        // metadata can actually parse numbers for.
        if phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_none() {
            return Err(UnknownRegion(s.to_owned()));
        }
        Ok(Self(id))
    }
}

/// A phone number in E.164 form. Only [`normalize`] creates one, so the
/// store is never handed an unnormalized number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    /// The number, e.g. `+8613800000000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a phone number was refused. Deliberately carries no digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_INPUT_LEN} characters")]
    TooLong,
    #[error("is not a phone number")]
    Unparsable,
    #[error("is not a valid phone number")]
    Invalid,
}

/// Longest input accepted before parsing: generous for formatting
/// characters, and a bound on the parser's work.
pub const MAX_INPUT_LEN: usize = 40;

/// Most digits an E.164 number has (ITU-T E.164, section 6.1).
pub const MAX_E164_DIGITS: usize = 15;

/// Normalizes a number in any common format to E.164. Input starting with
/// `+` is parsed as international; anything else in `region` (so national
/// forms and the region's international call prefix, e.g. `00` in CN, work).
pub fn normalize(input: &str, region: Region) -> Result<E164, PhoneError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(PhoneError::Empty);
    }
    if input.chars().count() > MAX_INPUT_LEN {
        return Err(PhoneError::TooLong);
    }
    let country = if input.starts_with('+') {
        None
    } else {
        Some(region.0)
    };
    let number = phonenumber::parse(country, input).map_err(|_| PhoneError::Unparsable)?;
    if !number.is_valid() {
        return Err(PhoneError::Invalid);
    }
    let e164 = e164_of(&number);
    // E.164 allows at most 15 digits, but phonenumber's metadata accepts
    // some longer ones (a 16-digit German number passes `is_valid`); no
    // network can route them, and other systems would refuse to store them.
    if e164.len() > MAX_E164_DIGITS + 1 {
        return Err(PhoneError::Invalid);
    }
    // A stored number is looked up again from its E.164 form, so that form
    // must parse back to itself. phonenumber does not promise it: "00 7
    // 8000000000" dialled from China is valid as +78000000000, which then
    // reads as unparsable (the leading 8 is taken for Russia's national
    // prefix). Such a number is refused rather than stored unreachable.
    // The check is skipped when the input already is that form.
    if e164 != input {
        let again = phonenumber::parse(None, &e164).map_err(|_| PhoneError::Invalid)?;
        // Validity and the E.164 form are functions of the country code and
        // the national number alone, so a number that parses back to the
        // same two is valid and prints the same, without validating it a
        // second time (validation runs the numbering plan's regexes and is
        // most of this function's cost). Only a number that parses back to
        // something else is checked in full.
        let same =
            again.code().value() == number.code().value() && again.national() == number.national();
        if !same && (!again.is_valid() || e164_of(&again) != e164) {
            return Err(PhoneError::Invalid);
        }
    }
    Ok(E164(e164))
}

/// The E.164 form of a parsed number: `+`, the country code and the national
/// significant number with its leading zeros. This is what phonenumber's
/// E.164 formatter writes, but that formatter first matches the region's
/// formatting patterns (regexes) that only the other modes use, so it costs
/// more than parsing the number did.
fn e164_of(number: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

/// Loads the phone metadata now. The library parses it lazily on first use,
/// which takes hundreds of milliseconds; services call this at startup so no
/// caller's request pays for it.
pub fn warm_up() {
    let _ = normalize("+8613800138000", Region::CN);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn() -> Region {
        Region::CN
    }

    #[test]
    fn a_number_whose_e164_form_does_not_parse_back_is_refused() {
        // Found by the fixed-point property: valid as dialled from China,
        // unparsable once stored as +78000000000.
        assert_eq!(normalize("0078000000000", cn()), Err(PhoneError::Invalid));
        assert!(normalize("+78000000000", cn()).is_err());
        // The same from Italy, found by the property that compares with
        // phonenumber's own formatter and validation.
        let it: Region = "IT".parse().expect("IT");
        assert_eq!(normalize("0078400000000", it), Err(PhoneError::Invalid));
    }

    #[test]
    fn regions_parse_case_insensitively_and_reject_unknown_codes() {
        assert_eq!("CN".parse::<Region>(), Ok(Region::CN));
        assert_eq!(Region::CN.code(), "CN");
        assert_eq!("us".parse::<Region>().expect("us").code(), "US");
        let err = "XX".parse::<Region>().expect_err("XX is no region");
        assert!(err.to_string().contains("ISO 3166-1"));
        assert!("".parse::<Region>().is_err());
        assert!("China".parse::<Region>().is_err());
    }

    #[test]
    fn national_and_international_forms_normalize_to_the_same_e164() {
        let expected = "+8613800138000";
        for input in [
            "13800138000",
            "138 0013 8000",
            "138-0013-8000",
            "+86 138 0013 8000",
            "+8613800138000",
            "008613800138000",
            " (+86) 138-0013-8000 ",
        ] {
            assert_eq!(
                normalize(input, cn()).map(|n| n.to_string()),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn landlines_and_foreign_numbers_keep_their_country() {
        assert_eq!(
            normalize("0592 123 4567", cn())
                .expect("Xiamen landline")
                .as_str(),
            "+865921234567"
        );
        assert_eq!(
            normalize("+1 650-253-0000", cn())
                .expect("US number")
                .as_str(),
            "+16502530000"
        );
        let us: Region = "US".parse().expect("US");
        assert_eq!(
            normalize("(650) 253-0000", us)
                .expect("US national")
                .as_str(),
            "+16502530000"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(normalize("", cn()), Err(PhoneError::Empty));
        assert_eq!(normalize("   ", cn()), Err(PhoneError::Empty));
        assert_eq!(normalize("hello", cn()), Err(PhoneError::Unparsable));
        assert_eq!(normalize("+86 1", cn()), Err(PhoneError::Unparsable));
        // Parsable, but no such number exists in the numbering plan.
        assert_eq!(normalize("123", cn()), Err(PhoneError::Invalid));
        assert_eq!(normalize("+86 12345678901", cn()), Err(PhoneError::Invalid));
        // Valid to phonenumber's German metadata, but 16 digits: longer
        // than E.164 allows (found by the property tests).
        assert_eq!(
            normalize("+4921000000000000", cn()),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize(&"1".repeat(MAX_INPUT_LEN + 1), cn()),
            Err(PhoneError::TooLong)
        );
    }
}
