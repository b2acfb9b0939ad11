//! How enumerations are spelled in the database.
//!
//! Columns hold short lowercase names rather than protobuf numbers, so rows
//! stay readable to an operator with `psql`/`sqlite3` and do not depend on
//! wire numbering. The migrations' CHECK constraints list the same names.

use crate::model::{Channel, ContactOutcome, Direction, Need, TagKind, Weekday};

use super::StoreError;

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {column} value {value:?}"))
}

pub(crate) fn channel(c: Channel) -> &'static str {
    match c {
        // Unspecified never reaches the store (validation refuses it or maps
        // it to NULL); spell it anyway so the mapping is total.
        Channel::Unspecified => "unspecified",
        Channel::Voice => "voice",
        Channel::Chat => "chat",
        Channel::Email => "email",
        Channel::Social => "social",
        Channel::Video => "video",
        Channel::FieldVisit => "field_visit",
    }
}

pub(crate) fn parse_channel(s: &str) -> Result<Channel, StoreError> {
    Ok(match s {
        "voice" => Channel::Voice,
        "chat" => Channel::Chat,
        "email" => Channel::Email,
        "social" => Channel::Social,
        "video" => Channel::Video,
        "field_visit" => Channel::FieldVisit,
        _ => return Err(corrupt("channel", s)),
    })
}

pub(crate) fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Unspecified => "unspecified",
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

pub(crate) fn parse_direction(s: &str) -> Result<Direction, StoreError> {
    Ok(match s {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        _ => return Err(corrupt("direction", s)),
    })
}

pub(crate) fn outcome(o: ContactOutcome) -> &'static str {
    match o {
        ContactOutcome::Unspecified => "unspecified",
        ContactOutcome::Resolved => RESOLVED,
        ContactOutcome::Unresolved => "unresolved",
        ContactOutcome::Escalated => "escalated",
        ContactOutcome::Abandoned => ABANDONED,
        ContactOutcome::Callback => "callback",
    }
}

/// Spelled once because summary queries filter on them.
pub(crate) const RESOLVED: &str = "resolved";
pub(crate) const ABANDONED: &str = "abandoned";

pub(crate) fn parse_outcome(s: &str) -> Result<ContactOutcome, StoreError> {
    Ok(match s {
        RESOLVED => ContactOutcome::Resolved,
        "unresolved" => ContactOutcome::Unresolved,
        "escalated" => ContactOutcome::Escalated,
        ABANDONED => ContactOutcome::Abandoned,
        "callback" => ContactOutcome::Callback,
        _ => return Err(corrupt("outcome", s)),
    })
}

pub(crate) fn tag_kind(k: TagKind) -> &'static str {
    match k {
        TagKind::Unspecified => "unspecified",
        TagKind::AddressForm => "address_form",
        TagKind::CallPattern => "call_pattern",
        TagKind::HandlingHabit => "handling_habit",
        TagKind::Caution => "caution",
        TagKind::Interest => "interest",
        TagKind::Other => "other",
    }
}

pub(crate) fn parse_tag_kind(s: &str) -> Result<TagKind, StoreError> {
    Ok(match s {
        "address_form" => TagKind::AddressForm,
        "call_pattern" => TagKind::CallPattern,
        "handling_habit" => TagKind::HandlingHabit,
        "caution" => TagKind::Caution,
        "interest" => TagKind::Interest,
        "other" => TagKind::Other,
        _ => return Err(corrupt("tag kind", s)),
    })
}

pub(crate) fn need(n: Need) -> &'static str {
    match n {
        Need::Unspecified => "unspecified",
        Need::Recognition => "recognition",
        Need::Soothing => "soothing",
        Need::Compensation => "compensation",
        Need::ImprovementMeasures => "improvement_measures",
        Need::ConcretePlan => "concrete_plan",
        Need::JustTalk => "just_talk",
    }
}

pub(crate) fn parse_need(s: &str) -> Result<Need, StoreError> {
    Ok(match s {
        "recognition" => Need::Recognition,
        "soothing" => Need::Soothing,
        "compensation" => Need::Compensation,
        "improvement_measures" => Need::ImprovementMeasures,
        "concrete_plan" => Need::ConcretePlan,
        "just_talk" => Need::JustTalk,
        _ => return Err(corrupt("need", s)),
    })
}

/// Contact windows are read and written as a whole, so they live in one
/// JSON column: `[{"days":[1,5],"start":540,"end":720}]`, days in ISO
/// numbering (Monday = 1).
#[derive(serde::Serialize, serde::Deserialize)]
struct WindowJson {
    #[serde(default)]
    days: Vec<i32>,
    start: u32,
    end: u32,
}

pub(crate) fn windows(windows: &[crate::model::ContactWindow]) -> Result<String, StoreError> {
    let json: Vec<WindowJson> = windows
        .iter()
        .map(|w| WindowJson {
            days: w.days.iter().map(|d| *d as i32).collect(),
            start: w.start_minute,
            end: w.end_minute,
        })
        .collect();
    serde_json::to_string(&json)
        .map_err(|e| StoreError::Corrupt(format!("contact windows do not encode: {e}")))
}

pub(crate) fn parse_windows(s: &str) -> Result<Vec<crate::model::ContactWindow>, StoreError> {
    let json: Vec<WindowJson> = serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("contact windows do not decode: {e}")))?;
    json.into_iter()
        .map(|w| {
            let days = w
                .days
                .into_iter()
                .map(|d| match Weekday::try_from(d) {
                    Ok(day) if day != Weekday::Unspecified => Ok(day),
                    _ => Err(StoreError::Corrupt(format!("unknown weekday {d}"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(crate::model::ContactWindow {
                days,
                start_minute: w.start,
                end_minute: w.end,
            })
        })
        .collect()
}

/// Counts and sums come back as `i64`; the contract carries `u32`. Values
/// never exceed it in practice, and saturating beats failing a lookup.
pub(crate) fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}
