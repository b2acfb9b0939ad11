//! How enumerations are spelled in the database.
//!
//! Columns hold short lowercase names rather than protobuf numbers, so rows
//! stay readable to an operator with `psql`/`sqlite3` and do not depend on
//! wire numbering. The migrations' CHECK constraints list the same names.

use chrono::{DateTime, Utc};

use crate::model::{
    ChangeKind, Channel, ContactOutcome, Direction, Need, Tag, TagKind, ValueTier, Weekday,
};

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

pub(crate) fn tier(t: ValueTier) -> &'static str {
    match t {
        // Never stored: every customer has a computed tier.
        ValueTier::Unspecified => "unspecified",
        ValueTier::Standard => "standard",
        ValueTier::Preferred => "preferred",
        ValueTier::Vip => "vip",
    }
}

pub(crate) fn change_kind(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Unspecified => "unspecified",
        ChangeKind::CustomerUpserted => "customer_upserted",
        ChangeKind::ContactRecorded => "contact_recorded",
        ChangeKind::Complaint => "complaint",
        ChangeKind::PreferencesChanged => "preferences_changed",
        ChangeKind::ConsentChanged => "consent_changed",
        ChangeKind::EventRecorded => "event_recorded",
        ChangeKind::Erased => "erased",
        ChangeKind::CareNoteAdded => "care_note_added",
        ChangeKind::CampaignRecorded => "campaign_recorded",
    }
}

pub(crate) fn parse_change_kind(s: &str) -> Result<ChangeKind, StoreError> {
    Ok(match s {
        "customer_upserted" => ChangeKind::CustomerUpserted,
        "contact_recorded" => ChangeKind::ContactRecorded,
        "complaint" => ChangeKind::Complaint,
        "preferences_changed" => ChangeKind::PreferencesChanged,
        "consent_changed" => ChangeKind::ConsentChanged,
        "event_recorded" => ChangeKind::EventRecorded,
        "erased" => ChangeKind::Erased,
        "care_note_added" => ChangeKind::CareNoteAdded,
        "campaign_recorded" => ChangeKind::CampaignRecorded,
        _ => return Err(corrupt("change kind", s)),
    })
}

/// A care note's topics: a JSON array of strings.
pub(crate) fn topics(topics: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(topics)
        .map_err(|e| StoreError::Corrupt(format!("topics do not encode: {e}")))
}

pub(crate) fn parse_topics(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("topics do not decode: {e}")))
}

/// A tag as a care note keeps it: timestamps in microseconds.
#[derive(serde::Serialize, serde::Deserialize)]
struct TagJson {
    id: String,
    kind: String,
    text: String,
    #[serde(default)]
    author: String,
    created: i64,
    #[serde(default)]
    expires: Option<i64>,
}

fn micros(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} is out of range")))
}

pub(crate) fn note_tags(tags: &[Tag]) -> Result<String, StoreError> {
    let json: Vec<TagJson> = tags
        .iter()
        .map(|t| TagJson {
            id: t.tag_id.clone(),
            kind: tag_kind(t.kind).to_owned(),
            text: t.text.clone(),
            author: t.author.clone(),
            created: t.created_at.timestamp_micros(),
            expires: t.expires_at.map(|e| e.timestamp_micros()),
        })
        .collect();
    serde_json::to_string(&json)
        .map_err(|e| StoreError::Corrupt(format!("note tags do not encode: {e}")))
}

pub(crate) fn parse_note_tags(s: &str) -> Result<Vec<Tag>, StoreError> {
    let json: Vec<TagJson> = serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("note tags do not decode: {e}")))?;
    json.into_iter()
        .map(|t| {
            Ok(Tag {
                tag_id: t.id,
                kind: parse_tag_kind(&t.kind)?,
                text: t.text,
                author: t.author,
                created_at: micros(t.created)?,
                expires_at: t.expires.map(micros).transpose()?,
            })
        })
        .collect()
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
