//! Request validation shared by all services. Every failure names the field
//! it is about, and converts into INVALID_ARGUMENT.

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field's path in the request, e.g. `agent.skills`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<FieldError> for tonic::Status {
    fn from(e: FieldError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Largest request message any Rapport RPC accepts (and largest response
/// a service sends), 1 MiB. The largest legitimate requests — a customer
/// with all its tags, a classification text of 16 KiB with a history —
/// are far smaller; anything bigger is refused before it is decoded.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Longest id accepted anywhere (customer, agent, call, center ids).
pub const MAX_ID_LEN: usize = 64;

/// Validates an external id: 1..=64 characters of `[A-Za-z0-9_.:-]`. Ids end
/// up in Redis keys and logs, so nothing else is allowed.
pub fn id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(FieldError::new(
            field,
            "may only contain letters, digits and _ . : -",
        ));
    }
    Ok(())
}

/// Like [`id`] but an empty value is allowed (an optional reference).
pub fn optional_id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        Ok(())
    } else {
        id(field, value)
    }
}

/// Longest routing name (skill, pool, language, dialect).
pub const MAX_NAME_LEN: usize = 32;

/// Validates a routing attribute name: 1..=32 characters of `[a-z0-9_-]`.
/// These names become parts of Redis index keys.
pub fn name(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    {
        return Err(FieldError::new(
            field,
            "may only contain lowercase letters, digits, _ and -",
        ));
    }
    Ok(())
}

/// Validates free text by length in characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Decodes a protobuf enum field, refusing values this build does not know.
/// `allow_unspecified` decides whether 0 is acceptable.
pub fn enumeration<E: TryFrom<i32>>(
    field: &str,
    raw: i32,
    allow_unspecified: bool,
) -> Result<E, FieldError> {
    if raw == 0 && !allow_unspecified {
        return Err(FieldError::new(field, "must be specified"));
    }
    E::try_from(raw).map_err(|_| FieldError::new(field, format!("unknown value {raw}")))
}

/// Validates a score on the 0..=10 scale.
pub fn score(field: &str, value: f64) -> Result<(), FieldError> {
    if !(0.0..=10.0).contains(&value) || value.is_nan() {
        return Err(FieldError::new(field, "must be between 0 and 10"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_restricted_to_key_safe_characters() {
        assert!(id("customer_id", "C-001:a.b_c").is_ok());
        assert_eq!(id("customer_id", "").unwrap_err().field, "customer_id");
        assert!(id("customer_id", "a b").is_err());
        assert!(id("customer_id", "{cc}").is_err());
        assert!(id("customer_id", &"x".repeat(65)).is_err());
        assert!(optional_id("agent_id", "").is_ok());
    }

    #[test]
    fn names_are_lowercase_and_short() {
        assert!(name("skill", "wealth_products").is_ok());
        assert!(name("skill", "Wealth").is_err());
        assert!(name("skill", "").is_err());
        assert!(name("skill", &"a".repeat(33)).is_err());
    }

    #[test]
    fn scores_stay_in_range() {
        assert!(score("s", 0.0).is_ok());
        assert!(score("s", 10.0).is_ok());
        assert!(score("s", 10.01).is_err());
        assert!(score("s", -1.0).is_err());
        assert!(score("s", f64::NAN).is_err());
    }

    #[test]
    fn status_names_the_field() {
        let status: tonic::Status = FieldError::new("agent.skills", "bad").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("agent.skills"));
    }
}
