//! Request validation: turns wire messages into domain inputs, or refuses
//! them with a [`FieldError`] (INVALID_ARGUMENT) naming the offending field
//! by its path in the request, e.g. `customer.phones[0].number`.
//!
//! Everything is checked before the store is touched, so a refused request
//! writes nothing. Limits are in characters and generous for real data;
//! they exist so one record cannot bloat the hot path.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rapport_kit::validate::{self as v, FieldError};
use rapport_proto as pb;

use crate::model::{
    CampaignExposure, Channel, Consent, Contact, ContactCursor, ContactOutcome, ContactWindow,
    CustomerField, CustomerInput, CustomerPatch, Direction, Need, NeedWeight, NewCareNote,
    NewEvent, NewTag, PhoneInput, Preferences, PublicInfluence, SearchFilter, TagKind, ValueTier,
    Weekday,
};
use rapport_kit::phone::{self, E164, Region};

/// Longest values accepted, in characters.
pub(crate) mod max {
    pub const NAME: usize = 200;
    pub const FORM_OF_ADDRESS: usize = 100;
    pub const LOCALE: usize = 35;
    pub const PLACE: usize = 100;
    pub const AGE_BAND: usize = 16;
    pub const OCCUPATION: usize = 100;
    pub const SEGMENT: usize = 64;
    pub const PHONE_LABEL: usize = 32;
    pub const TAG_TEXT: usize = 200;
    pub const AUTHOR: usize = 64;
    pub const DNC_SOURCE: usize = 100;
    pub const IVR_SELECTION: usize = 64;
    pub const NOTES: usize = 2_000;
    /// Phones per customer.
    pub const PHONES: usize = 10;
    /// Tags per request.
    pub const TAGS: usize = 50;
    /// Contact windows per customer.
    pub const WINDOWS: usize = 28;
    pub const EVENT_DETAIL: usize = 500;
    pub const CAMPAIGN_TITLE: usize = 200;
    /// Topics per care note, and characters per topic.
    pub const TOPICS: usize = 20;
    pub const TOPIC: usize = 64;
    /// Page sizes (ListContacts, SearchCustomers) and export batches.
    pub const PAGE_SIZE: u32 = 200;
    pub const EXPORT_BATCH: u32 = 1_000;
}

/// Page size when the request leaves it at 0.
pub(crate) const DEFAULT_PAGE_SIZE: u32 = 50;
/// Export batch when the request leaves it at 0.
pub(crate) const DEFAULT_EXPORT_BATCH: u32 = 200;

/// How far in the future a contact may start: clocks of the recording
/// service and ours differ a little, but a contact cannot be from tomorrow.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

const MINUTES_PER_DAY: u32 = 24 * 60;

/// Free text: at most `max_chars` characters and no NUL, which PostgreSQL
/// cannot store in TEXT (refusing it here keeps both backends alike).
fn text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    v::text(field, value, max_chars)?;
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Like [`text`] but must contain something besides whitespace.
fn required_text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    text(field, value, max_chars)
}

/// A routing attribute (language, dialect): empty, or a lowercase name
/// routing can use as an index key.
fn optional_name(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        Ok(())
    } else {
        v::name(field, value)
    }
}

fn non_negative(field: &str, value: i64) -> Result<(), FieldError> {
    if value < 0 {
        return Err(FieldError::new(field, "must not be negative"));
    }
    Ok(())
}

/// A protobuf timestamp as UTC, within years 1900..=9999 (what every
/// backend and client can represent).
fn timestamp(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, FieldError> {
    let out_of_range = || FieldError::new(field, "is not a valid timestamp in years 1900..=9999");
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(out_of_range)?;
    let t = DateTime::from_timestamp(ts.seconds, nanos).ok_or_else(out_of_range)?;
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).map(|d| d.and_time(Default::default()));
    let latest = NaiveDate::from_ymd_opt(10000, 1, 1).map(|d| d.and_time(Default::default()));
    match (earliest, latest) {
        (Some(lo), Some(hi)) if t.naive_utc() >= lo && t.naive_utc() < hi => Ok(t),
        _ => Err(out_of_range()),
    }
}

fn optional_timestamp(
    field: &str,
    ts: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    ts.map(|t| timestamp(field, t)).transpose()
}

fn required_timestamp(
    field: &str,
    ts: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, FieldError> {
    optional_timestamp(field, ts)?.ok_or_else(|| FieldError::new(field, "must be set"))
}

/// A customer id given on its own, e.g. `GetProfileRequest.customer_id`.
pub(crate) fn customer_id(value: &str) -> Result<(), FieldError> {
    v::id("customer_id", value)
}

/// A tag id given on its own.
pub(crate) fn tag_id(value: &str) -> Result<(), FieldError> {
    v::id("tag_id", value)
}

/// The number of a lookup, normalized to E.164.
pub(crate) fn lookup_phone(value: &str, region: Region) -> Result<E164, FieldError> {
    phone::normalize(value, region).map_err(|e| FieldError::new("phone", e.to_string()))
}

/// A whole customer for create or upsert. `now` decides whether tag
/// expiries lie in the future and stamps a do-not-call without a time.
pub(crate) fn customer(
    customer: Option<&pb::Customer>,
    region: Region,
    now: DateTime<Utc>,
) -> Result<CustomerInput, FieldError> {
    let c = customer.ok_or_else(|| FieldError::new("customer", "must be set"))?;
    v::id("customer.customer_id", &c.customer_id)?;
    text("customer.name", &c.name, max::NAME)?;
    text(
        "customer.form_of_address",
        &c.form_of_address,
        max::FORM_OF_ADDRESS,
    )?;
    text("customer.locale", &c.locale, max::LOCALE)?;
    optional_name("customer.language", &c.language)?;
    optional_name("customer.dialect", &c.dialect)?;
    text("customer.region", &c.region, max::PLACE)?;
    text("customer.city", &c.city, max::PLACE)?;
    time_zone("customer.time_zone", &c.time_zone)?;
    text("customer.age_band", &c.age_band, max::AGE_BAND)?;
    text("customer.occupation", &c.occupation, max::OCCUPATION)?;
    non_negative("customer.assets", c.assets)?;
    non_negative("customer.contribution", c.contribution)?;
    non_negative("customer.potential_value", c.potential_value)?;
    text("customer.segment", &c.segment, max::SEGMENT)?;

    let public_influence = c.public_influence.unwrap_or_default();
    if i64::try_from(public_influence.social_followers).is_err() {
        return Err(FieldError::new(
            "customer.public_influence.social_followers",
            "is too large",
        ));
    }

    let tags = if c.tags.is_empty() {
        // proto3 cannot tell "no tags" from "keep the tags": an upsert
        // without tags leaves the stored ones alone.
        None
    } else {
        Some(tags("customer.tags", &c.tags, now)?)
    };

    Ok(CustomerInput {
        customer_id: c.customer_id.clone(),
        name: c.name.clone(),
        form_of_address: c.form_of_address.clone(),
        locale: c.locale.clone(),
        language: c.language.clone(),
        dialect: c.dialect.clone(),
        region: c.region.clone(),
        city: c.city.clone(),
        time_zone: c.time_zone.clone(),
        age_band: c.age_band.clone(),
        occupation: c.occupation.clone(),
        assets: c.assets,
        contribution: c.contribution,
        potential_value: c.potential_value,
        segment: c.segment.clone(),
        declared_needs: needs("customer.declared_needs", &c.declared_needs)?,
        public_influence: PublicInfluence {
            social_followers: public_influence.social_followers,
            media_presence: public_influence.media_presence,
        },
        phones: phones("customer.phones", &c.phones, region)?,
        tags,
        preferences: preferences("customer.preferences", c.preferences.as_ref())?,
        consent: consent("customer.consent", c.consent.as_ref(), now)?,
    })
}

/// Empty, or an IANA time zone name known to the tz database.
fn time_zone(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.parse::<chrono_tz::Tz>().is_ok() {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "is not an IANA time zone name (e.g. Asia/Shanghai)",
        ))
    }
}

fn needs(field: &str, needs: &[pb::NeedWeight]) -> Result<Vec<NeedWeight>, FieldError> {
    let mut seen: HashMap<Need, usize> = HashMap::new();
    needs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let need_field = format!("{field}[{i}].need");
            let need: Need = v::enumeration(&need_field, n.need, false)?;
            if let Some(first) = seen.insert(need, i) {
                return Err(FieldError::new(
                    need_field,
                    format!("repeats {field}[{first}].need"),
                ));
            }
            if !(0.0..=1.0).contains(&n.weight) {
                return Err(FieldError::new(
                    format!("{field}[{i}].weight"),
                    "must be between 0 and 1",
                ));
            }
            Ok(NeedWeight {
                need,
                weight: n.weight,
            })
        })
        .collect()
}

fn phones(
    field: &str,
    phones: &[pb::Phone],
    region: Region,
) -> Result<Vec<PhoneInput>, FieldError> {
    if phones.len() > max::PHONES {
        return Err(FieldError::new(
            field,
            format!("at most {} phones", max::PHONES),
        ));
    }
    let mut seen: HashMap<E164, usize> = HashMap::new();
    phones
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let number_field = format!("{field}[{i}].number");
            let number = phone::normalize(&p.number, region)
                .map_err(|e| FieldError::new(&number_field, e.to_string()))?;
            if let Some(first) = seen.insert(number.clone(), i) {
                return Err(FieldError::new(
                    number_field,
                    format!("is the same number as {field}[{first}].number"),
                ));
            }
            text(&format!("{field}[{i}].label"), &p.label, max::PHONE_LABEL)?;
            Ok(PhoneInput {
                number,
                label: p.label.clone(),
            })
        })
        .collect()
}

/// Tags to add. Server-managed fields (`tag_id`, `created_at`) are ignored.
pub(crate) fn tags(
    field: &str,
    tags: &[pb::CommunicationTag],
    now: DateTime<Utc>,
) -> Result<Vec<NewTag>, FieldError> {
    if tags.len() > max::TAGS {
        return Err(FieldError::new(
            field,
            format!("at most {} tags per request", max::TAGS),
        ));
    }
    tags.iter()
        .enumerate()
        .map(|(i, t)| {
            let kind: TagKind = v::enumeration(&format!("{field}[{i}].kind"), t.kind, false)?;
            required_text(&format!("{field}[{i}].text"), &t.text, max::TAG_TEXT)?;
            text(&format!("{field}[{i}].author"), &t.author, max::AUTHOR)?;
            let expires_field = format!("{field}[{i}].expires_at");
            let expires_at = optional_timestamp(&expires_field, t.expires_at.as_ref())?;
            if expires_at.is_some_and(|at| at <= now) {
                return Err(FieldError::new(expires_field, "must be in the future"));
            }
            Ok(NewTag {
                kind,
                text: t.text.clone(),
                author: t.author.clone(),
                expires_at,
            })
        })
        .collect()
}

/// Tags of an AddTags request: at least one.
pub(crate) fn new_tags(
    tags_in: &[pb::CommunicationTag],
    now: DateTime<Utc>,
) -> Result<Vec<NewTag>, FieldError> {
    if tags_in.is_empty() {
        return Err(FieldError::new("tags", "must not be empty"));
    }
    tags("tags", tags_in, now)
}

pub(crate) fn preferences(
    field: &str,
    p: Option<&pb::Preferences>,
) -> Result<Preferences, FieldError> {
    let Some(p) = p else {
        return Ok(Preferences::default());
    };
    v::optional_id(
        &format!("{field}.preferred_agent_id"),
        &p.preferred_agent_id,
    )?;
    v::optional_id(
        &format!("{field}.dedicated_field_manager_id"),
        &p.dedicated_field_manager_id,
    )?;
    let channel: Channel = v::enumeration(
        &format!("{field}.preferred_channel"),
        p.preferred_channel,
        true,
    )?;
    optional_name(&format!("{field}.language"), &p.language)?;
    let windows_field = format!("{field}.contact_windows");
    if p.contact_windows.len() > max::WINDOWS {
        return Err(FieldError::new(
            windows_field,
            format!("at most {} windows", max::WINDOWS),
        ));
    }
    let contact_windows = p
        .contact_windows
        .iter()
        .enumerate()
        .map(|(i, w)| contact_window(&format!("{windows_field}[{i}]"), w))
        .collect::<Result<_, _>>()?;
    Ok(Preferences {
        preferred_agent_id: p.preferred_agent_id.clone(),
        dedicated_field_manager_id: p.dedicated_field_manager_id.clone(),
        preferred_channel: (channel != Channel::Unspecified).then_some(channel),
        contact_windows,
        language: p.language.clone(),
    })
}

fn contact_window(field: &str, w: &pb::ContactWindow) -> Result<ContactWindow, FieldError> {
    let mut days: Vec<Weekday> = w
        .days
        .iter()
        .enumerate()
        .map(|(j, d)| v::enumeration(&format!("{field}.days[{j}]"), *d, false))
        .collect::<Result<_, _>>()?;
    days.sort();
    days.dedup();
    if w.start_minute >= MINUTES_PER_DAY {
        return Err(FieldError::new(
            format!("{field}.start_minute"),
            "must be below 1440 (minutes after local midnight)",
        ));
    }
    if w.end_minute > MINUTES_PER_DAY {
        return Err(FieldError::new(
            format!("{field}.end_minute"),
            "must be at most 1440 (minutes after local midnight)",
        ));
    }
    if w.end_minute <= w.start_minute {
        return Err(FieldError::new(
            format!("{field}.end_minute"),
            "must be after start_minute",
        ));
    }
    Ok(ContactWindow {
        days,
        start_minute: w.start_minute,
        end_minute: w.end_minute,
    })
}

/// Consent. A do-not-call without a time is stamped with `now`: the moment
/// we learned of it.
pub(crate) fn consent(
    field: &str,
    c: Option<&pb::Consent>,
    now: DateTime<Utc>,
) -> Result<Consent, FieldError> {
    let Some(c) = c else {
        return Ok(Consent::default());
    };
    text(
        &format!("{field}.do_not_call_source"),
        &c.do_not_call_source,
        max::DNC_SOURCE,
    )?;
    let at = optional_timestamp(
        &format!("{field}.do_not_call_at"),
        c.do_not_call_at.as_ref(),
    )?;
    Ok(Consent {
        care_calls: c.care_calls,
        do_not_call: c.do_not_call,
        do_not_call_source: c.do_not_call_source.clone(),
        do_not_call_at: match at {
            None if c.do_not_call => Some(now),
            at => at,
        },
    })
}

/// A contact to record.
pub(crate) fn contact(
    contact: Option<&pb::ContactRecord>,
    now: DateTime<Utc>,
) -> Result<Contact, FieldError> {
    let c = contact.ok_or_else(|| FieldError::new("contact", "must be set"))?;
    v::id("contact.contact_id", &c.contact_id)?;
    let channel: Channel = v::enumeration("contact.channel", c.channel, false)?;
    let direction: Direction = v::enumeration("contact.direction", c.direction, false)?;
    let started_at = required_timestamp("contact.started_at", c.started_at.as_ref())?;
    if started_at > now + MAX_CLOCK_SKEW {
        return Err(FieldError::new(
            "contact.started_at",
            "must not be in the future",
        ));
    }
    text(
        "contact.ivr_selection",
        &c.ivr_selection,
        max::IVR_SELECTION,
    )?;
    v::optional_id("contact.agent_id", &c.agent_id)?;
    let outcome: ContactOutcome = v::enumeration("contact.outcome", c.outcome, true)?;
    let csat = match c.csat {
        0 => None,
        1..=5 => u8::try_from(c.csat).ok(),
        _ => {
            return Err(FieldError::new(
                "contact.csat",
                "must be 1..=5, or 0 when not given",
            ));
        }
    };
    text("contact.notes", &c.notes, max::NOTES)?;
    Ok(Contact {
        contact_id: c.contact_id.clone(),
        channel,
        direction,
        started_at,
        ivr_selection: c.ivr_selection.clone(),
        queue_wait_s: c.queue_wait_s,
        handle_s: c.handle_s,
        agent_id: c.agent_id.clone(),
        outcome: (outcome != ContactOutcome::Unspecified).then_some(outcome),
        complaint: c.complaint,
        escalation_threat: c.escalation_threat,
        csat,
        solutions_offered: c.solutions_offered,
        solutions_rejected: c.solutions_rejected,
        compensation_asked: c.compensation_asked,
        compensation_granted: c.compensation_granted,
        notes: c.notes.clone(),
    })
}

/// A page size: 0 means the default, above `max::PAGE_SIZE` is refused.
pub(crate) fn page_size(value: u32) -> Result<u32, FieldError> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=max::PAGE_SIZE => Ok(value),
        _ => Err(FieldError::new(
            "page_size",
            format!("must be at most {}", max::PAGE_SIZE),
        )),
    }
}

/// Page tokens are hex so they stay opaque and survive any transport.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(field: &str, s: &str) -> Result<String, FieldError> {
    let bad = || FieldError::new(field, "is not a token this service issued");
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// The token that resumes a contact listing after `c`.
pub(crate) fn contact_token(c: &Contact) -> String {
    hex(&format!(
        "{}/{}",
        c.started_at.timestamp_micros(),
        c.contact_id
    ))
}

pub(crate) fn contact_cursor(token: &str) -> Result<Option<ContactCursor>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || FieldError::new("page_token", "is not a token this service issued");
    let raw = unhex("page_token", token)?;
    let (micros, contact_id) = raw.split_once('/').ok_or_else(bad)?;
    let started_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    v::id("page_token", contact_id).map_err(|_| bad())?;
    Ok(Some(ContactCursor {
        started_at,
        contact_id: contact_id.to_owned(),
    }))
}

/// The token that resumes a customer search after `customer_id`.
pub(crate) fn customer_token(customer_id: &str) -> String {
    hex(customer_id)
}

pub(crate) fn customer_cursor(token: &str) -> Result<Option<String>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let id = unhex("page_token", token)?;
    v::id("page_token", &id)
        .map_err(|_| FieldError::new("page_token", "is not a token this service issued"))?;
    Ok(Some(id))
}

/// A change-feed resume token: empty (from the start) or a change id.
pub(crate) fn resume_token(token: &str) -> Result<i64, FieldError> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| FieldError::new("resume_token", "is not a token this service issued"))
}

pub(crate) fn export_batch(value: u32) -> Result<u32, FieldError> {
    match value {
        0 => Ok(DEFAULT_EXPORT_BATCH),
        1..=max::EXPORT_BATCH => Ok(value),
        _ => Err(FieldError::new(
            "batch_size",
            format!("must be at most {}", max::EXPORT_BATCH),
        )),
    }
}

/// A partial update: the mask's paths, validated against the fields they
/// select (errors name `customer.<path>`), and the expected version.
pub(crate) fn update(
    req: &pb::UpdateCustomerRequest,
    region: Region,
    now: DateTime<Utc>,
) -> Result<CustomerPatch, FieldError> {
    let c = req
        .customer
        .as_ref()
        .ok_or_else(|| FieldError::new("customer", "must be set"))?;
    v::id("customer.customer_id", &c.customer_id)?;
    if req.expected_version < 1 {
        return Err(FieldError::new(
            "expected_version",
            "must be the version last read (1 or more)",
        ));
    }
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(FieldError::new(
            "update_mask",
            "must list the fields to update, e.g. \"name\" or \"preferences.language\"",
        ));
    }
    let mut fields = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let selected = CustomerField::selected_by(path);
        if selected.is_empty() {
            return Err(FieldError::new(
                format!("update_mask.paths[{i}]"),
                format!("{path:?} is not an updatable field of Customer"),
            ));
        }
        for field in selected {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    // Validate only what the mask selects: a copy holding just those
    // fields goes through the same checks as a create.
    let mut only = pb::Customer {
        customer_id: c.customer_id.clone(),
        ..Default::default()
    };
    for field in &fields {
        copy_field(&mut only, c, *field);
    }
    let values = customer(Some(&only), region, now)?;
    Ok(CustomerPatch { fields, values })
}

fn copy_field(dst: &mut pb::Customer, src: &pb::Customer, field: CustomerField) {
    use CustomerField as F;
    let src_prefs = src.preferences.clone().unwrap_or_default();
    let src_consent = src.consent.clone().unwrap_or_default();
    let src_influence = src.public_influence.unwrap_or_default();
    let prefs = dst.preferences.get_or_insert_with(Default::default);
    let consent = dst.consent.get_or_insert_with(Default::default);
    let influence = dst.public_influence.get_or_insert_with(Default::default);
    match field {
        F::Name => dst.name.clone_from(&src.name),
        F::FormOfAddress => dst.form_of_address.clone_from(&src.form_of_address),
        F::Locale => dst.locale.clone_from(&src.locale),
        F::Language => dst.language.clone_from(&src.language),
        F::Dialect => dst.dialect.clone_from(&src.dialect),
        F::Region => dst.region.clone_from(&src.region),
        F::City => dst.city.clone_from(&src.city),
        F::TimeZone => dst.time_zone.clone_from(&src.time_zone),
        F::AgeBand => dst.age_band.clone_from(&src.age_band),
        F::Occupation => dst.occupation.clone_from(&src.occupation),
        F::Assets => dst.assets = src.assets,
        F::Contribution => dst.contribution = src.contribution,
        F::PotentialValue => dst.potential_value = src.potential_value,
        F::Segment => dst.segment.clone_from(&src.segment),
        F::DeclaredNeeds => dst.declared_needs.clone_from(&src.declared_needs),
        F::SocialFollowers => influence.social_followers = src_influence.social_followers,
        F::MediaPresence => influence.media_presence = src_influence.media_presence,
        F::Phones => dst.phones.clone_from(&src.phones),
        F::Tags => dst.tags.clone_from(&src.tags),
        F::PreferredAgentId => prefs.preferred_agent_id = src_prefs.preferred_agent_id,
        F::DedicatedFieldManagerId => {
            prefs.dedicated_field_manager_id = src_prefs.dedicated_field_manager_id;
        }
        F::PreferredChannel => prefs.preferred_channel = src_prefs.preferred_channel,
        F::ContactWindows => prefs.contact_windows = src_prefs.contact_windows,
        F::PreferredLanguage => prefs.language = src_prefs.language,
        F::CareCalls => consent.care_calls = src_consent.care_calls,
        F::DoNotCall => consent.do_not_call = src_consent.do_not_call,
        F::DoNotCallSource => consent.do_not_call_source = src_consent.do_not_call_source,
        F::DoNotCallAt => consent.do_not_call_at = src_consent.do_not_call_at,
    }
}

/// A care note to add.
pub(crate) fn care_note(
    note: Option<&pb::CareNote>,
    now: DateTime<Utc>,
) -> Result<NewCareNote, FieldError> {
    let n = note.ok_or_else(|| FieldError::new("note", "must be set"))?;
    v::id("note.customer_id", &n.customer_id)?;
    v::optional_id("note.note_id", &n.note_id)?;
    v::optional_id("note.contact_id", &n.contact_id)?;
    text("note.author", &n.author, max::AUTHOR)?;
    required_text("note.text", &n.text, max::NOTES)?;
    if n.topics.len() > max::TOPICS {
        return Err(FieldError::new(
            "note.topics",
            format!("at most {} topics", max::TOPICS),
        ));
    }
    for (i, topic) in n.topics.iter().enumerate() {
        required_text(&format!("note.topics[{i}]"), topic, max::TOPIC)?;
    }
    Ok(NewCareNote {
        customer_id: n.customer_id.clone(),
        note_id: (!n.note_id.is_empty()).then(|| n.note_id.clone()),
        contact_id: n.contact_id.clone(),
        author: n.author.clone(),
        text: n.text.clone(),
        topics: n.topics.clone(),
        added_tags: tags("note.added_tags", &n.added_tags, now)?,
    })
}

/// A life or product event to record.
pub(crate) fn event(
    event: Option<&pb::CustomerEvent>,
    now: DateTime<Utc>,
) -> Result<NewEvent, FieldError> {
    let e = event.ok_or_else(|| FieldError::new("event", "must be set"))?;
    v::optional_id("event.event_id", &e.event_id)?;
    v::name("event.kind", &e.kind)?;
    text("event.detail", &e.detail, max::EVENT_DETAIL)?;
    let occurred_at = required_timestamp("event.occurred_at", e.occurred_at.as_ref())?;
    if occurred_at > now + MAX_CLOCK_SKEW {
        return Err(FieldError::new(
            "event.occurred_at",
            "must not be in the future",
        ));
    }
    Ok(NewEvent {
        event_id: (!e.event_id.is_empty()).then(|| e.event_id.clone()),
        kind: e.kind.clone(),
        detail: e.detail.clone(),
        occurred_at,
    })
}

/// A campaign exposure to record.
pub(crate) fn exposure(
    exposure: Option<&pb::CampaignExposure>,
    now: DateTime<Utc>,
) -> Result<CampaignExposure, FieldError> {
    let x = exposure.ok_or_else(|| FieldError::new("exposure", "must be set"))?;
    v::id("exposure.campaign_id", &x.campaign_id)?;
    text("exposure.title", &x.title, max::CAMPAIGN_TITLE)?;
    let channel: Channel = v::enumeration("exposure.channel", x.channel, false)?;
    let sent_at = required_timestamp("exposure.sent_at", x.sent_at.as_ref())?;
    if sent_at > now + MAX_CLOCK_SKEW {
        return Err(FieldError::new(
            "exposure.sent_at",
            "must not be in the future",
        ));
    }
    Ok(CampaignExposure {
        campaign_id: x.campaign_id.clone(),
        title: x.title.clone(),
        channel,
        sent_at,
    })
}

/// The filter of a customer search.
pub(crate) fn search(req: &pb::SearchCustomersRequest) -> Result<SearchFilter, FieldError> {
    text("segment", &req.segment, max::SEGMENT)?;
    let need: Need = v::enumeration("need", req.need, true)?;
    let tag_kind: TagKind = v::enumeration("tag_kind", req.tag_kind, true)?;
    let tier: ValueTier = v::enumeration("tier", req.tier, true)?;
    Ok(SearchFilter {
        segment: (!req.segment.is_empty()).then(|| req.segment.clone()),
        need: (need != Need::Unspecified).then_some(need),
        tag_kind: (tag_kind != TagKind::Unspecified).then_some(tag_kind),
        tier: (tier != ValueTier::Unspecified).then_some(tier),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).expect("valid")
    }

    fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }
    }

    /// The reference VIP customer of DESIGN.md §3.
    fn reference() -> pb::Customer {
        pb::Customer {
            customer_id: "C-VIP-001".into(),
            name: "陈先生".into(),
            form_of_address: "陈总".into(),
            locale: "zh-CN".into(),
            language: "zh".into(),
            dialect: "minnan".into(),
            region: "Fujian".into(),
            city: "Xiamen".into(),
            time_zone: "Asia/Shanghai".into(),
            age_band: "35-44".into(),
            occupation: "private business owner".into(),
            assets: 8_000_000,
            segment: "private-banking".into(),
            declared_needs: vec![pb::NeedWeight {
                need: Need::Recognition as i32,
                weight: 0.8,
            }],
            phones: vec![pb::Phone {
                number: "138 0013 8000".into(),
                label: "mobile".into(),
            }],
            tags: vec![pb::CommunicationTag {
                kind: TagKind::AddressForm as i32,
                text: "陈总".into(),
                ..Default::default()
            }],
            preferences: Some(pb::Preferences {
                dedicated_field_manager_id: "FM-7".into(),
                preferred_channel: Channel::Voice as i32,
                contact_windows: vec![pb::ContactWindow {
                    days: vec![Weekday::Friday as i32, Weekday::Monday as i32],
                    start_minute: 9 * 60,
                    end_minute: 12 * 60,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field_of(c: pb::Customer) -> String {
        customer(Some(&c), Region::CN, now())
            .expect_err("refused")
            .field
    }

    #[test]
    fn the_reference_customer_is_accepted_and_normalized() {
        let input = customer(Some(&reference()), Region::CN, now()).expect("valid");
        assert_eq!(input.phones[0].number.as_str(), "+8613800138000");
        assert_eq!(input.tags.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            input.preferences.contact_windows[0].days,
            vec![Weekday::Monday, Weekday::Friday]
        );
        assert_eq!(input.preferences.preferred_channel, Some(Channel::Voice));
        assert_eq!(input.consent, Consent::default());
    }

    #[test]
    fn bad_customer_fields_are_named() {
        assert_eq!(
            customer(None, Region::CN, now())
                .expect_err("missing")
                .field,
            "customer"
        );
        let mut c = reference();
        c.customer_id = String::new();
        assert_eq!(field_of(c), "customer.customer_id");
        let mut c = reference();
        c.customer_id = "a b".into();
        assert_eq!(field_of(c), "customer.customer_id");
        let mut c = reference();
        c.time_zone = "Mars/Olympus".into();
        assert_eq!(field_of(c), "customer.time_zone");
        let mut c = reference();
        c.name = "x".repeat(max::NAME + 1);
        assert_eq!(field_of(c), "customer.name");
        let mut c = reference();
        c.city = "Xia\0men".into();
        assert_eq!(field_of(c), "customer.city");
        let mut c = reference();
        c.dialect = "Minnan Chinese".into();
        assert_eq!(field_of(c), "customer.dialect");
        let mut c = reference();
        c.assets = -1;
        assert_eq!(field_of(c), "customer.assets");
        let mut c = reference();
        c.public_influence = Some(pb::PublicInfluence {
            social_followers: u64::MAX,
            media_presence: false,
        });
        assert_eq!(field_of(c), "customer.public_influence.social_followers");
    }

    #[test]
    fn bad_phones_are_named_by_index() {
        let mut c = reference();
        c.phones.push(pb::Phone {
            number: "not a number".into(),
            label: String::new(),
        });
        assert_eq!(field_of(c), "customer.phones[1].number");
        let mut c = reference();
        c.phones.push(pb::Phone {
            number: "+86 138-0013-8000".into(),
            label: String::new(),
        });
        let err = customer(Some(&c), Region::CN, now()).expect_err("duplicate");
        assert_eq!(err.field, "customer.phones[1].number");
        assert!(err.problem.contains("customer.phones[0]"));
        let mut c = reference();
        c.phones = vec![
            pb::Phone {
                number: "13800138000".into(),
                label: String::new(),
            };
            max::PHONES + 1
        ];
        assert_eq!(field_of(c), "customer.phones");
    }

    #[test]
    fn bad_needs_tags_windows_and_consent_are_named() {
        let mut c = reference();
        c.declared_needs[0].need = 99;
        assert_eq!(field_of(c), "customer.declared_needs[0].need");
        let mut c = reference();
        c.declared_needs[0].weight = 1.5;
        assert_eq!(field_of(c), "customer.declared_needs[0].weight");
        let mut c = reference();
        c.declared_needs[0].weight = f64::NAN;
        assert_eq!(field_of(c), "customer.declared_needs[0].weight");
        let mut c = reference();
        c.declared_needs.push(c.declared_needs[0]);
        assert_eq!(field_of(c), "customer.declared_needs[1].need");

        let mut c = reference();
        c.tags[0].kind = TagKind::Unspecified as i32;
        assert_eq!(field_of(c), "customer.tags[0].kind");
        let mut c = reference();
        c.tags[0].text = "  ".into();
        assert_eq!(field_of(c), "customer.tags[0].text");
        let mut c = reference();
        c.tags[0].text = "x".repeat(max::TAG_TEXT + 1);
        assert_eq!(field_of(c), "customer.tags[0].text");
        let mut c = reference();
        c.tags[0].expires_at = Some(ts(now()));
        assert_eq!(field_of(c), "customer.tags[0].expires_at");

        let window = |start, end| {
            let mut c = reference();
            if let Some(p) = c.preferences.as_mut() {
                p.contact_windows[0].start_minute = start;
                p.contact_windows[0].end_minute = end;
            }
            field_of(c)
        };
        assert_eq!(
            window(600, 600),
            "customer.preferences.contact_windows[0].end_minute"
        );
        assert_eq!(
            window(600, 540),
            "customer.preferences.contact_windows[0].end_minute"
        );
        assert_eq!(
            window(1440, 1441),
            "customer.preferences.contact_windows[0].start_minute"
        );
        let mut c = reference();
        if let Some(p) = c.preferences.as_mut() {
            p.contact_windows[0].days.push(8);
        }
        assert_eq!(
            field_of(c),
            "customer.preferences.contact_windows[0].days[2]"
        );
        let mut c = reference();
        if let Some(p) = c.preferences.as_mut() {
            p.preferred_channel = 42;
        }
        assert_eq!(field_of(c), "customer.preferences.preferred_channel");

        let mut c = reference();
        c.consent = Some(pb::Consent {
            do_not_call: true,
            do_not_call_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        });
        assert_eq!(field_of(c), "customer.consent.do_not_call_at");
    }

    #[test]
    fn do_not_call_without_a_time_is_stamped_now() {
        let mut c = reference();
        c.consent = Some(pb::Consent {
            do_not_call: true,
            ..Default::default()
        });
        let input = customer(Some(&c), Region::CN, now()).expect("valid");
        assert_eq!(input.consent.do_not_call_at, Some(now()));
    }

    #[test]
    fn upsert_without_tags_keeps_the_stored_ones() {
        let mut c = reference();
        c.tags.clear();
        let input = customer(Some(&c), Region::CN, now()).expect("valid");
        assert_eq!(input.tags, None);
    }

    fn valid_contact() -> pb::ContactRecord {
        pb::ContactRecord {
            contact_id: "call-1".into(),
            channel: Channel::Voice as i32,
            direction: Direction::Inbound as i32,
            started_at: Some(ts(now() - Duration::hours(1))),
            queue_wait_s: 34,
            handle_s: 300,
            agent_id: "A-1".into(),
            outcome: ContactOutcome::Resolved as i32,
            csat: 5,
            ..Default::default()
        }
    }

    fn contact_field(c: pb::ContactRecord) -> String {
        contact(Some(&c), now()).expect_err("refused").field
    }

    #[test]
    fn contacts_are_checked_field_by_field() {
        let ok = contact(Some(&valid_contact()), now()).expect("valid");
        assert_eq!(ok.csat, Some(5));
        assert_eq!(ok.outcome, Some(ContactOutcome::Resolved));

        let mut c = valid_contact();
        c.csat = 0;
        assert_eq!(contact(Some(&c), now()).expect("no csat").csat, None);
        c.outcome = 0;
        assert_eq!(contact(Some(&c), now()).expect("no outcome").outcome, None);

        assert_eq!(contact(None, now()).expect_err("missing").field, "contact");
        let mut c = valid_contact();
        c.csat = 6;
        assert_eq!(contact_field(c), "contact.csat");
        let mut c = valid_contact();
        c.channel = 0;
        assert_eq!(contact_field(c), "contact.channel");
        let mut c = valid_contact();
        c.channel = 99;
        assert_eq!(contact_field(c), "contact.channel");
        let mut c = valid_contact();
        c.direction = 7;
        assert_eq!(contact_field(c), "contact.direction");
        let mut c = valid_contact();
        c.outcome = 42;
        assert_eq!(contact_field(c), "contact.outcome");
        let mut c = valid_contact();
        c.started_at = None;
        assert_eq!(contact_field(c), "contact.started_at");
        let mut c = valid_contact();
        c.started_at = Some(ts(now() + Duration::days(1)));
        assert_eq!(contact_field(c), "contact.started_at");
        let mut c = valid_contact();
        c.contact_id = "x".repeat(65);
        assert_eq!(contact_field(c), "contact.contact_id");
        let mut c = valid_contact();
        c.notes = "x".repeat(max::NOTES + 1);
        assert_eq!(contact_field(c), "contact.notes");
        let mut c = valid_contact();
        c.agent_id = "agent 1".into();
        assert_eq!(contact_field(c), "contact.agent_id");
    }

    #[test]
    fn lookups_and_tag_requests_name_their_fields() {
        assert_eq!(
            lookup_phone("12", Region::CN).expect_err("short").field,
            "phone"
        );
        assert_eq!(
            lookup_phone("+86 138 0013 8000", Region::CN)
                .expect("valid")
                .as_str(),
            "+8613800138000"
        );
        assert_eq!(new_tags(&[], now()).expect_err("empty").field, "tags");
        assert_eq!(customer_id("").expect_err("empty").field, "customer_id");
        assert_eq!(tag_id("a/b").expect_err("bad").field, "tag_id");
    }

    #[test]
    fn timestamps_outside_years_1900_to_9999_are_refused() {
        let t = |seconds| timestamp("t", &prost_types::Timestamp { seconds, nanos: 0 });
        assert!(t(0).is_ok());
        assert!(t(-2_208_988_800).is_ok()); // 1900-01-01
        assert!(t(-2_208_988_801).is_err());
        assert!(t(253_402_300_799).is_ok()); // 9999-12-31T23:59:59
        assert!(t(253_402_300_800).is_err());
        assert!(t(i64::MAX).is_err());
    }
}

/// Property tests: every validator here takes arbitrary wire input without
/// panicking, accepts exactly what it documents, and the page and resume
/// tokens it issues parse back to what they encode. (cargo-fuzz needs a
/// nightly toolchain; these properties stand in for fuzz targets.)
#[cfg(test)]
mod properties {
    use rapport_testkit::proptest::prelude::*;
    use rapport_testkit::proptest::{collection::vec, option, sample};

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).expect("valid")
    }

    /// Arbitrary text, biased towards what the validators look at.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z_\\-]{0,40}",
            "[A-Za-z0-9 .:_\\-]{0,80}",
            "[a-z ]{190,210}",
            Just(String::new()),
            Just("a\0b".to_owned()),
        ]
    }

    fn timestamp_pb() -> impl Strategy<Value = prost_types::Timestamp> {
        prop_oneof![
            (any::<i64>(), any::<i32>()),
            (1_600_000_000i64..1_760_000_000, 0i32..1_000_000_000),
            (-2_300_000_000i64..-2_200_000_000, -5i32..5),
            (253_402_300_000i64..253_402_400_000, 0i32..2),
        ]
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
    }

    fn enum_raw() -> impl Strategy<Value = i32> {
        prop_oneof![0i32..12, any::<i32>()]
    }

    fn phone_pb() -> impl Strategy<Value = pb::Phone> {
        (
            prop_oneof![
                "1[3-9][0-9]{9}",
                "\\+86 1[3-9][0-9] [0-9]{4} [0-9]{4}",
                "[0-9 +()\\-]{0,45}",
                any::<String>(),
            ],
            field(),
        )
            .prop_map(|(number, label)| pb::Phone { number, label })
    }

    fn tag_pb() -> impl Strategy<Value = pb::CommunicationTag> {
        (enum_raw(), field(), field(), option::of(timestamp_pb())).prop_map(
            |(kind, text, author, expires_at)| pb::CommunicationTag {
                kind,
                text,
                author,
                expires_at,
                ..Default::default()
            },
        )
    }

    fn window_pb() -> impl Strategy<Value = pb::ContactWindow> {
        (
            vec(enum_raw(), 0..9),
            prop_oneof![0u32..1500, any::<u32>()],
            prop_oneof![0u32..1500, any::<u32>()],
        )
            .prop_map(|(days, start_minute, end_minute)| pb::ContactWindow {
                days,
                start_minute,
                end_minute,
            })
    }

    fn zone() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            sample::select(
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .map(|z| z.name().to_owned())
                    .collect::<Vec<_>>()
            ),
            field(),
        ]
    }

    /// Mostly a valid value, sometimes anything: about a third of the
    /// generated customers pass every check, so both the refusals and the
    /// accepted results are exercised.
    fn mostly<T: std::fmt::Debug>(
        good: impl Strategy<Value = T> + 'static,
        bad: impl Strategy<Value = T> + 'static,
    ) -> BoxedStrategy<T> {
        prop_oneof![19 => good, 1 => bad].boxed()
    }

    fn text_of(max: usize) -> BoxedStrategy<String> {
        let pattern = format!("[A-Za-z ]{{0,{}}}", max.min(30));
        let good = rapport_testkit::proptest::string::string_regex(&pattern).expect("a regex");
        mostly(good, field())
    }

    fn good_tag() -> impl Strategy<Value = pb::CommunicationTag> {
        (
            1i32..=5,
            "[a-z]{1,20}",
            option::of(1_760_000_000i64..1_900_000_000),
        )
            .prop_map(|(kind, text, expires)| pb::CommunicationTag {
                kind,
                text,
                expires_at: expires.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            })
    }

    fn good_window() -> impl Strategy<Value = pb::ContactWindow> {
        (vec(1i32..=7, 0..4), 0u32..1439)
            .prop_flat_map(|(days, start)| (Just(days), Just(start), start + 1..=MINUTES_PER_DAY))
            .prop_map(|(days, start_minute, end_minute)| pb::ContactWindow {
                days,
                start_minute,
                end_minute,
            })
    }

    prop_compose! {
        fn customer_pb()(
            ids in (field(), "[A-Za-z0-9_.:\\-]{1,64}", prop_oneof![9 => Just(true), 1 => Just(false)]),
            texts in (
                text_of(max::NAME), text_of(max::FORM_OF_ADDRESS), text_of(max::LOCALE),
                text_of(max::PLACE), text_of(max::PLACE), text_of(max::AGE_BAND),
                text_of(max::OCCUPATION), text_of(max::SEGMENT),
            ),
            speech in (mostly("[a-z]{0,8}", field()), mostly("[a-z]{0,8}", field())),
            zone in mostly(zone(), field()),
            amounts in (
                mostly(0i64..1_000_000_000, any::<i64>()),
                mostly(0i64..1_000_000_000, any::<i64>()),
                0i64..i64::MAX,
            ),
            needs in mostly(
                vec((1i32..=6, 0.0f64..=1.0), 0..2),
                vec((enum_raw(), any::<f64>()), 0..8),
            ),
            followers in mostly(0u64..1_000_000, any::<u64>()),
            phones in mostly(
                vec(("1[358][0-9]{9}", "[a-z]{0,10}").prop_map(|(number, label)| pb::Phone { number, label }), 0..3),
                vec(phone_pb(), 0..12),
            ),
            tags in mostly(vec(good_tag(), 0..3), vec(tag_pb(), 0..4)),
            prefs in option::of((
                mostly("[a-z0-9]{0,10}", field()),
                mostly("[a-z0-9]{0,10}", field()),
                mostly(0i32..=4, enum_raw()),
                mostly(vec(good_window(), 0..3), vec(window_pb(), 0..4)),
                mostly("[a-z]{0,5}", field()),
            )),
            consent in option::of((
                any::<bool>(),
                any::<bool>(),
                text_of(max::DNC_SOURCE),
                mostly(option::of(1_600_000_000i64..1_700_000_000).prop_map(|s| s.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })), option::of(timestamp_pb())),
            )),
        ) -> pb::Customer {
            let (raw_id, good_id, use_good) = ids;
            let (name, form_of_address, locale, region, city, age_band, occupation, segment) = texts;
            pb::Customer {
                customer_id: if use_good { good_id } else { raw_id },
                name,
                form_of_address,
                locale,
                language: speech.0,
                dialect: speech.1,
                region,
                city,
                time_zone: zone,
                age_band,
                occupation,
                assets: amounts.0,
                contribution: amounts.1,
                potential_value: amounts.2,
                segment,
                declared_needs: needs
                    .into_iter()
                    .map(|(need, weight)| pb::NeedWeight { need, weight })
                    .collect(),
                public_influence: Some(pb::PublicInfluence {
                    social_followers: followers,
                    ..Default::default()
                }),
                phones,
                tags,
                preferences: prefs.map(|(agent, manager, channel, contact_windows, language)| {
                    pb::Preferences {
                        preferred_agent_id: agent,
                        dedicated_field_manager_id: manager,
                        preferred_channel: channel,
                        contact_windows,
                        language,
                    }
                }),
                consent: consent.map(|(care_calls, do_not_call, source, at)| pb::Consent {
                    care_calls,
                    do_not_call,
                    do_not_call_source: source,
                    do_not_call_at: at,
                }),
                ..Default::default()
            }
        }
    }

    #[test]
    fn the_customer_generator_reaches_both_outcomes() {
        use rapport_testkit::proptest::strategy::ValueTree as _;
        use rapport_testkit::proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = customer_pb();
        let accepted = (0..400)
            .filter(|_| {
                let c = strategy.new_tree(&mut runner).expect("tree").current();
                customer(Some(&c), Region::CN, now()).is_ok()
            })
            .count();
        assert!((40..=360).contains(&accepted), "{accepted} of 400 accepted");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn customers_never_panic_and_accepted_ones_are_clean(c in customer_pb()) {
            let Ok(input) = customer(Some(&c), Region::CN, now()) else {
                return Ok(());
            };
            prop_assert!(v::id("id", &input.customer_id).is_ok());
            prop_assert!(input.name.chars().count() <= max::NAME && !input.name.contains('\0'));
            prop_assert!(input.time_zone.is_empty() || input.time_zone.parse::<chrono_tz::Tz>().is_ok());
            prop_assert!(input.assets >= 0 && input.contribution >= 0);
            prop_assert!(input.phones.len() <= max::PHONES);
            let mut seen = std::collections::HashSet::new();
            for p in &input.phones {
                prop_assert!(p.number.as_str().starts_with('+'));
                prop_assert!(seen.insert(p.number.clone()), "phones are unique");
            }
            for w in &input.preferences.contact_windows {
                prop_assert!(w.start_minute < w.end_minute && w.end_minute <= MINUTES_PER_DAY);
                prop_assert!(w.days.windows(2).all(|d| d[0] < d[1]), "days sorted, no repeats");
            }
            if let Some(tags) = &input.tags {
                prop_assert!(tags.iter().all(|t| t.expires_at.is_none_or(|at| at > now())));
            }
        }

        #[test]
        fn updates_never_panic_and_patch_only_what_the_mask_names(
            c in customer_pb(),
            paths in vec(prop_oneof![
                sample::select(vec![
                    "name", "time_zone", "phones", "tags", "preferences", "consent",
                    "preferences.contact_windows", "consent.do_not_call_at", "public_influence",
                    "declared_needs", "assets",
                ]).prop_map(str::to_owned),
                field(),
            ], 0..4),
            version in prop_oneof![any::<i64>(), 1i64..5],
        ) {
            let request = pb::UpdateCustomerRequest {
                customer: Some(c),
                update_mask: Some(prost_types::FieldMask { paths: paths.clone() }),
                expected_version: version,
            };
            if let Ok(patch) = update(&request, Region::CN, now()) {
                prop_assert!(version >= 1 && !paths.is_empty());
                for field in &patch.fields {
                    prop_assert!(paths.iter().any(|p| CustomerField::selected_by(p).contains(field)));
                }
            }
        }

        #[test]
        fn contacts_never_panic_and_accepted_ones_are_in_range(
            id in prop_oneof![field(), "[a-z0-9\\-]{1,20}"],
            channel in enum_raw(),
            direction in enum_raw(),
            started_at in option::of(timestamp_pb()),
            ivr in field(),
            agent in field(),
            outcome in enum_raw(),
            csat in prop_oneof![0u32..7, any::<u32>()],
            notes in field(),
        ) {
            let record = pb::ContactRecord {
                contact_id: id,
                channel,
                direction,
                started_at,
                ivr_selection: ivr,
                agent_id: agent,
                outcome,
                csat,
                notes,
                ..Default::default()
            };
            if let Ok(c) = contact(Some(&record), now()) {
                prop_assert!(c.csat.is_none_or(|s| (1..=5).contains(&s)));
                prop_assert_eq!(c.csat.is_none(), csat == 0);
                prop_assert!(c.started_at <= now() + MAX_CLOCK_SKEW);
                prop_assert!(c.notes.chars().count() <= max::NOTES);
            }
        }

        #[test]
        fn windows_are_accepted_exactly_when_within_one_day(w in window_pb()) {
            let days_ok = w.days.iter().all(|d| *d != 0 && pb::Weekday::try_from(*d).is_ok());
            let expected = days_ok
                && w.start_minute < MINUTES_PER_DAY
                && w.end_minute <= MINUTES_PER_DAY
                && w.end_minute > w.start_minute;
            prop_assert_eq!(contact_window("w", &w).is_ok(), expected, "{:?}", w);
        }

        #[test]
        fn time_zones_are_accepted_exactly_when_iana(value in zone()) {
            prop_assert_eq!(
                time_zone("time_zone", &value).is_ok(),
                value.is_empty() || value.parse::<chrono_tz::Tz>().is_ok()
            );
        }

        #[test]
        fn timestamps_are_accepted_exactly_in_years_1900_to_9999(ts in timestamp_pb()) {
            if let Ok(t) = timestamp("at", &ts) {
                prop_assert!((1900..=9999).contains(&chrono::Datelike::year(&t)));
                prop_assert_eq!(t.timestamp(), ts.seconds);
            }
        }

        #[test]
        fn page_tokens_round_trip(
            micros in -2_208_988_800_000_000i64..253_402_300_799_000_000,
            id in "[A-Za-z0-9_.:\\-]{1,64}",
        ) {
            let started_at = DateTime::from_timestamp_micros(micros).expect("in range");
            let c = contact(
                Some(&pb::ContactRecord {
                    contact_id: id.clone(),
                    channel: pb::Channel::Voice as i32,
                    direction: pb::Direction::Inbound as i32,
                    started_at: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
                    ..Default::default()
                }),
                now(),
            )
            .expect("valid contact");
            let c = Contact { started_at, ..c };
            let cursor = contact_cursor(&contact_token(&c)).expect("issued token").expect("some");
            prop_assert_eq!(cursor.started_at, started_at);
            prop_assert_eq!(&cursor.contact_id, &id);
            prop_assert_eq!(customer_cursor(&customer_token(&id)), Ok(Some(id)));
        }

        #[test]
        fn foreign_tokens_never_panic(token in prop_oneof![
            any::<String>(),
            "[0-9a-f]{0,80}",
            "[0-9a-fA-FxX]{0,9}",
        ]) {
            let _ = contact_cursor(&token);
            let _ = customer_cursor(&token);
            if let Ok(n) = resume_token(&token) {
                prop_assert!(n >= 0);
            }
        }

        #[test]
        fn resume_tokens_round_trip(n in 0i64..i64::MAX) {
            prop_assert_eq!(resume_token(&n.to_string()), Ok(n));
        }

        #[test]
        fn page_sizes_and_batches_are_bounded(value in prop_oneof![0u32..1100, any::<u32>()]) {
            match page_size(value) {
                Ok(size) => prop_assert!((1..=max::PAGE_SIZE).contains(&size)),
                Err(_) => prop_assert!(value > max::PAGE_SIZE),
            }
            match export_batch(value) {
                Ok(size) => prop_assert!((1..=max::EXPORT_BATCH).contains(&size)),
                Err(_) => prop_assert!(value > max::EXPORT_BATCH),
            }
        }

        #[test]
        fn notes_events_exposures_searches_and_lookups_never_panic(
            texts in vec(field(), 6),
            topics in vec(field(), 0..24),
            tags in vec(tag_pb(), 0..3),
            at in option::of(timestamp_pb()),
            raws in vec(enum_raw(), 4),
            phone in phone_pb(),
        ) {
            let _ = care_note(
                Some(&pb::CareNote {
                    note_id: texts[0].clone(),
                    customer_id: texts[1].clone(),
                    contact_id: texts[2].clone(),
                    author: texts[3].clone(),
                    text: texts[4].clone(),
                    topics,
                    added_tags: tags.clone(),
                    ..Default::default()
                }),
                now(),
            );
            let _ = event(
                Some(&pb::CustomerEvent {
                    event_id: texts[0].clone(),
                    kind: texts[5].clone(),
                    detail: texts[4].clone(),
                    occurred_at: at,
                }),
                now(),
            );
            let _ = exposure(
                Some(&pb::CampaignExposure {
                    campaign_id: texts[1].clone(),
                    title: texts[2].clone(),
                    channel: raws[0],
                    sent_at: at,
                }),
                now(),
            );
            let _ = search(&pb::SearchCustomersRequest {
                segment: texts[3].clone(),
                need: raws[1],
                tag_kind: raws[2],
                tier: raws[3],
                ..Default::default()
            });
            let _ = new_tags(&tags, now());
            let _ = lookup_phone(&phone.number, Region::CN);
            let _ = customer_id(&texts[0]);
            let _ = tag_id(&texts[1]);
        }
    }

    #[test]
    fn every_iana_zone_is_accepted() {
        for zone in chrono_tz::TZ_VARIANTS {
            assert!(
                time_zone("time_zone", zone.name()).is_ok(),
                "{}",
                zone.name()
            );
        }
    }
}
