//! Property tests for every parser and validator in the kit: phone
//! numbers, ids and names, free text, scores, enums, gRPC timeouts,
//! durations, the tokens file and the authorization table. Each must never
//! panic on arbitrary input, must accept exactly what it documents, and
//! must round-trip where it formats what it parses. (cargo-fuzz needs a
//! nightly toolchain; these properties stand in for fuzz targets.)

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use rapport_kit::deadline::{format_grpc_timeout, parse_grpc_timeout};
use rapport_kit::phone::{self, MAX_INPUT_LEN, PhoneError, Region};
use rapport_kit::security::{Role, Tokens};
use rapport_kit::validate::{self, MAX_ID_LEN, MAX_NAME_LEN};
use rapport_proto as pb;

/// Arbitrary text, biased towards the characters the parsers care about.
fn messy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9 +()\\-.]{0,50}",
        "[+0]{0,3}[0-9]{0,20}",
        "[A-Za-z0-9_.:{}\\- ]{0,80}",
    ]
}

/// Normalization as phonenumber itself does every step: its E.164
/// formatter, and full validation of the parsed-back form, plus the kit's
/// own E.164 length limit. `phone::normalize` takes shortcuts through the
/// first two and must agree with this on every input.
fn reference_normalize(input: &str, region: &str) -> Result<String, PhoneError> {
    use phonenumber::{Mode, country};
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
        Some(region.parse::<country::Id>().expect("a known region"))
    };
    let number = phonenumber::parse(country, input).map_err(|_| PhoneError::Unparsable)?;
    if !number.is_valid() {
        return Err(PhoneError::Invalid);
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    if e164.len() > phone::MAX_E164_DIGITS + 1 {
        return Err(PhoneError::Invalid);
    }
    if e164 != input {
        let again = phonenumber::parse(None, &e164).map_err(|_| PhoneError::Invalid)?;
        if !again.is_valid() || again.format().mode(Mode::E164).to_string() != e164 {
            return Err(PhoneError::Invalid);
        }
    }
    Ok(e164)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // --- phones -----------------------------------------------------------

    #[test]
    fn phone_normalization_never_panics_and_yields_e164(input in messy()) {
        match phone::normalize(&input, Region::CN) {
            Ok(number) => {
                let s = number.as_str();
                prop_assert!(s.starts_with('+'), "{s}");
                prop_assert!(s[1..].bytes().all(|b| b.is_ascii_digit()), "{s}");
                // E.164: at most 15 digits.
                prop_assert!((2..=phone::MAX_E164_DIGITS + 1).contains(&s.len()), "{s}");
            }
            Err(e) => {
                // Errors never echo the number (they reach statuses and logs).
                let text = e.to_string();
                let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 3 {
                    prop_assert!(!text.contains(&digits), "{text}");
                }
                if input.trim().is_empty() {
                    prop_assert_eq!(e, PhoneError::Empty);
                }
                if input.trim().chars().count() > MAX_INPUT_LEN {
                    prop_assert_eq!(e, PhoneError::TooLong);
                }
            }
        }
    }

    #[test]
    fn normalized_numbers_are_a_fixed_point(input in messy(), region in "[A-Z]{2}") {
        let region: Region = region.parse().unwrap_or(Region::CN);
        if let Ok(number) = phone::normalize(&input, region) {
            // Stored numbers are looked up again in any region.
            prop_assert_eq!(phone::normalize(number.as_str(), Region::CN), Ok(number.clone()));
            prop_assert_eq!(phone::normalize(number.as_str(), region), Ok(number));
        }
    }

    #[test]
    fn every_written_form_of_a_chinese_mobile_is_the_same_number(
        prefix in prop::sample::select(vec!["130", "135", "138", "139", "150", "186", "199"]),
        rest in "[0-9]{8}",
        form in 0usize..6,
    ) {
        let national = format!("{prefix}{rest}");
        let expected = phone::normalize(&national, Region::CN).expect("valid CN mobile");
        prop_assert_eq!(expected.as_str(), format!("+86{national}"));
        let (a, b, c) = (&national[..3], &national[3..7], &national[7..]);
        let written = match form {
            0 => format!("{a} {b} {c}"),
            1 => format!("{a}-{b}-{c}"),
            2 => format!("+86 {a} {b} {c}"),
            3 => format!("0086{national}"),
            4 => format!(" (+86) {a}-{b}-{c} "),
            _ => format!("+86{national}"),
        };
        prop_assert_eq!(phone::normalize(&written, Region::CN), Ok(expected));
    }

    #[test]
    fn region_codes_never_panic_and_round_trip(code in any::<String>()) {
        if let Ok(region) = code.parse::<Region>() {
            prop_assert_eq!(region.code(), code.trim().to_ascii_uppercase());
            prop_assert_eq!(region.code().parse::<Region>(), Ok(region));
        }
    }

    // --- ids, names, text, scores, enums -----------------------------------

    #[test]
    fn ids_are_accepted_exactly_when_key_safe(value in messy()) {
        let expected = !value.is_empty()
            && value.len() <= MAX_ID_LEN
            && value.chars().all(is_id_char);
        let result = validate::id("customer_id", &value);
        prop_assert_eq!(result.is_ok(), expected, "{:?}", value);
        if let Err(e) = result {
            prop_assert_eq!(&e.field, "customer_id");
            let status: tonic::Status = e.into();
            prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
            prop_assert!(status.message().starts_with("customer_id"));
        }
        prop_assert_eq!(
            validate::optional_id("agent_id", &value).is_ok(),
            value.is_empty() || expected
        );
    }

    #[test]
    fn valid_ids_are_accepted(value in "[A-Za-z0-9_.:-]{1,64}") {
        prop_assert!(validate::id("id", &value).is_ok());
    }

    #[test]
    fn names_are_accepted_exactly_when_lowercase_key_safe(value in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_\\- ]{0,40}",
    ]) {
        let expected = !value.is_empty()
            && value.len() <= MAX_NAME_LEN
            && value.chars().all(is_name_char);
        prop_assert_eq!(validate::name("skill", &value).is_ok(), expected, "{:?}", value);
    }

    #[test]
    fn text_is_limited_in_characters_not_bytes(value in any::<String>(), max in 0usize..64) {
        prop_assert_eq!(
            validate::text("notes", &value, max).is_ok(),
            value.chars().count() <= max
        );
    }

    #[test]
    fn scores_are_accepted_exactly_on_the_0_to_10_scale(value in any::<f64>()) {
        prop_assert_eq!(
            validate::score("s", value).is_ok(),
            (0.0..=10.0).contains(&value)
        );
    }

    #[test]
    fn enums_refuse_unknown_and_optionally_unspecified(raw in any::<i32>(), allow in any::<bool>()) {
        let result: Result<pb::Channel, _> = validate::enumeration("channel", raw, allow);
        let known = pb::Channel::try_from(raw).is_ok();
        prop_assert_eq!(result.is_ok(), known && (raw != 0 || allow));
        if let Ok(channel) = result {
            prop_assert_eq!(channel as i32, raw);
        }
    }

    // --- gRPC timeouts and durations ---------------------------------------

    #[test]
    fn grpc_timeouts_never_panic(value in prop_oneof![any::<String>(), "[0-9]{0,10}[HMSmunx]?"]) {
        if let Some(d) = parse_grpc_timeout(&value) {
            // What parses is what the wire format allows.
            prop_assert!((2..=9).contains(&value.len()));
            prop_assert!(d <= Duration::from_secs(99_999_999 * 3600));
        }
    }

    #[test]
    fn grpc_timeouts_round_trip_within_a_millisecond(micros in 0u64..(100_000_000u64 * 1_000_000)) {
        let d = Duration::from_micros(micros);
        let sent = format_grpc_timeout(d);
        let back = parse_grpc_timeout(&sent).expect("formatted timeouts parse");
        if d.is_zero() {
            // An expired budget still fails fast at the next hop.
            prop_assert_eq!(back, Duration::from_millis(1));
        } else {
            prop_assert!(back <= d && d - back < Duration::from_secs(1), "{d:?} → {sent} → {back:?}");
            if d < Duration::from_secs(100_000) {
                prop_assert!(d - back < Duration::from_millis(1), "{d:?} → {sent} → {back:?}");
            }
        }
    }

    #[test]
    fn durations_never_panic_and_round_trip(value in any::<String>(), ms in 0u64..10_000_000_000) {
        let _ = rapport_kit::config::parse_duration(&value);
        let d = Duration::from_millis(ms);
        let written = humantime::format_duration(d).to_string();
        prop_assert_eq!(rapport_kit::config::parse_duration(&written), Ok(d));
    }

    // --- the tokens file and the authorization table -----------------------

    #[test]
    fn tokens_files_never_panic(text in prop_oneof![
        any::<String>(),
        "\\[tokens\\.[a-z]{1,5}\\]\ntoken = \"[a-z0-9]{0,30}\"\nrole = \"[a-z\\-]{1,14}\"\n(agent_id = \"[a-z {}]{0,6}\"\n)?",
    ]) {
        let _ = Tokens::parse(&text, Path::new("tokens.toml"));
    }

    #[test]
    fn valid_tokens_files_identify_each_caller(
        entries in prop::collection::btree_map(
            "[a-z][a-z0-9-]{0,10}",
            ("[A-Za-z0-9]{24,40}", 0usize..Role::ALL.len(), "[a-z0-9]{1,8}"),
            1..6,
        ),
        stranger in "[A-Za-z0-9]{24,40}",
    ) {
        let names = ["ivr", "crm", "agent-desktop", "dialer", "mesh", "admin"];
        let mut text = String::new();
        for (name, (token, role, agent)) in &entries {
            text.push_str(&format!("[tokens.{name}]\ntoken = \"{name}{token}\"\nrole = \"{}\"\n", names[*role]));
            if Role::ALL[*role] == Role::AgentDesktop {
                text.push_str(&format!("agent_id = \"{agent}\"\n"));
            }
        }
        let tokens = Tokens::parse(&text, Path::new("tokens.toml")).expect("a valid file");
        for (name, (token, role, agent)) in &entries {
            let caller = tokens
                .identify(format!("{name}{token}").as_bytes())
                .expect("each token identifies its caller");
            prop_assert_eq!(&caller.name, name);
            prop_assert_eq!(caller.role, Role::ALL[*role]);
            if caller.role == Role::AgentDesktop {
                prop_assert!(caller.may_act_for(agent));
            }
        }
        if !entries.iter().any(|(n, (t, _, _))| format!("{n}{t}") == stranger) {
            prop_assert!(tokens.identify(stranger.as_bytes()).is_none());
        }
        // A token too short to be unguessable is refused.
        let short = "[tokens.x]\ntoken = \"short\"\nrole = \"ivr\"\n";
        prop_assert!(Tokens::parse(short, Path::new("tokens.toml")).is_err());
    }

    #[test]
    fn unknown_methods_are_denied_to_every_role(path in "/[A-Za-z0-9./]{0,60}") {
        let known = rapport_kit::authz::POLICY.iter().any(|(p, _)| *p == path);
        for role in Role::ALL {
            if !known {
                prop_assert!(!rapport_kit::authz::allowed(&path, role), "{path} {role:?}");
            }
        }
    }
}

// Numbers whose E.164 form parses back to another number are rare among
// random inputs, so the agreement property gets more cases than the rest.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn normalization_agrees_with_the_libraries_formatter_and_full_validation(
        input in prop_oneof![
            messy(),
            "\\+[1-9][0-9]{5,14}",
            "00[1-9][0-9]{5,14}",
            // Dialled abroad with the region's international prefix: where
            // the parsed-back form can differ from the number itself.
            "00[1-9][0-9]{9,12}",
            "0?[1-9][0-9]{5,11}",
        ],
        code in prop::sample::select(vec![
            "CN", "US", "GB", "RU", "KZ", "IT", "SM", "VA", "DE", "FR", "JP", "IN", "BR", "AU",
            "AR", "MX", "CI", "NZ",
        ]),
    ) {
        let region: Region = code.parse().expect("a known region");
        prop_assert_eq!(
            phone::normalize(&input, region).map(|n| n.as_str().to_owned()),
            reference_normalize(&input, code)
        );
    }
}
