//! The profile domain as the store reads and writes it: validated inputs and
//! stored records, independent of the wire format.
//!
//! Enumerations reuse the generated `rapport.v1` enums (they are plain Rust
//! enums), so the domain and the contract cannot drift apart; everything
//! else is a Rust type with real timestamps and no "unset" sentinels where
//! the store needs to tell absence apart.

use chrono::{DateTime, Utc};
pub use rapport_proto::{Channel, ContactOutcome, Direction, Need, TagKind, Weekday};

use rapport_kit::phone::E164;

/// A need with its weight in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedWeight {
    pub need: Need,
    pub weight: f64,
}

/// Public reach of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublicInfluence {
    /// Followers on social media; at most `i64::MAX` so both backends can
    /// store it.
    pub social_followers: u64,
    pub media_presence: bool,
}

/// A recurring contact window in the customer's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactWindow {
    /// Days it applies to; empty means every day.
    pub days: Vec<Weekday>,
    /// Minutes after local midnight, `0..1440`.
    pub start_minute: u32,
    /// Minutes after local midnight, `start_minute+1..=1440`.
    pub end_minute: u32,
}

/// How the customer wants to be served.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preferences {
    pub preferred_agent_id: String,
    pub dedicated_field_manager_id: String,
    /// `None` when the customer has no preferred channel.
    pub preferred_channel: Option<Channel>,
    pub contact_windows: Vec<ContactWindow>,
    pub language: String,
}

/// Outbound consent and do-not-call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consent {
    pub care_calls: bool,
    pub do_not_call: bool,
    pub do_not_call_source: String,
    pub do_not_call_at: Option<DateTime<Utc>>,
}

/// A phone number as written: already normalized to E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneInput {
    pub number: E164,
    pub label: String,
}

/// A stored phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// E.164, e.g. `+8613800000000`.
    pub number: String,
    pub label: String,
}

/// A communication tag to add; the store assigns its id and creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTag {
    pub kind: TagKind,
    pub text: String,
    pub author: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored communication tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub tag_id: String,
    pub kind: TagKind,
    pub text: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Everything a create or upsert writes about a customer. Server-managed
/// fields (version, timestamps, tag ids) are absent on purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerInput {
    pub customer_id: String,
    pub name: String,
    pub form_of_address: String,
    pub locale: String,
    pub language: String,
    pub dialect: String,
    pub region: String,
    pub city: String,
    /// IANA name, or empty when unknown.
    pub time_zone: String,
    pub age_band: String,
    pub occupation: String,
    pub assets: i64,
    pub contribution: i64,
    pub potential_value: i64,
    pub segment: String,
    pub declared_needs: Vec<NeedWeight>,
    pub public_influence: PublicInfluence,
    pub phones: Vec<PhoneInput>,
    /// `Some` replaces the customer's tags; `None` keeps the stored ones, so
    /// a CRM sync that does not carry tags does not wipe what agents wrote.
    pub tags: Option<Vec<NewTag>>,
    pub preferences: Preferences,
    pub consent: Consent,
}

/// A stored customer record.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub form_of_address: String,
    pub locale: String,
    pub language: String,
    pub dialect: String,
    pub region: String,
    pub city: String,
    pub time_zone: String,
    pub age_band: String,
    pub occupation: String,
    pub assets: i64,
    pub contribution: i64,
    pub potential_value: i64,
    pub segment: String,
    pub declared_needs: Vec<NeedWeight>,
    pub public_influence: PublicInfluence,
    pub phones: Vec<Phone>,
    /// Tags not expired at the time of reading.
    pub tags: Vec<Tag>,
    pub preferences: Preferences,
    pub consent: Consent,
    /// Starts at 1 and grows by one on every write to the record (fields,
    /// phones, tags, preferences, consent). Recording history (contacts,
    /// events, campaigns) does not change it, so a CRM user editing a record
    /// is not refused just because the customer called meanwhile.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One finished contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub contact_id: String,
    pub channel: Channel,
    pub direction: Direction,
    pub started_at: DateTime<Utc>,
    pub ivr_selection: String,
    pub queue_wait_s: u32,
    pub handle_s: u32,
    pub agent_id: String,
    /// `None` when the recorder did not report how it ended.
    pub outcome: Option<ContactOutcome>,
    pub complaint: bool,
    pub escalation_threat: bool,
    /// 1..=5, `None` when not given.
    pub csat: Option<u8>,
    pub solutions_offered: u32,
    pub solutions_rejected: u32,
    pub compensation_asked: bool,
    pub compensation_granted: bool,
    pub notes: String,
}

/// A life or product event to record. Without an id the store assigns one;
/// with one, recording is idempotent on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Option<String>,
    pub kind: String,
    pub detail: String,
    pub occurred_at: DateTime<Utc>,
}

/// A stored life or product event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub kind: String,
    pub detail: String,
    pub occurred_at: DateTime<Utc>,
}

/// A campaign sent to a customer. Recording is idempotent on
/// (campaign, channel, sent_at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignExposure {
    pub campaign_id: String,
    pub title: String,
    pub channel: Channel,
    pub sent_at: DateTime<Utc>,
}

/// A wait that preceded a complaint or a hang-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEvidence {
    pub wait_s: u32,
    pub complaint: bool,
    pub abandoned: bool,
    pub at: DateTime<Utc>,
}

/// What routing and classification need from a customer's history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistorySummary {
    pub contacts_7d: u32,
    pub contacts_30d: u32,
    pub contacts_90d: u32,
    pub total_contacts: u32,
    pub complaints_90d: u32,
    pub escalation_threats_90d: u32,
    pub abandoned_90d: u32,
    pub solutions_rejected_90d: u32,
    pub compensation_asked_90d: u32,
    /// Mean over the 90-day contacts that were handled at all (handle time
    /// above zero): abandoned contacts would otherwise drag it to zero.
    pub mean_handle_s_90d: u32,
    pub waits_before_complaints: Vec<WaitEvidence>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub recent_contacts: Vec<Contact>,
    pub recent_events: Vec<Event>,
    pub recent_campaigns: Vec<CampaignExposure>,
    pub affinity_agent_ids: Vec<String>,
}

/// A customer with their history summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub customer: Customer,
    pub summary: HistorySummary,
}

/// How many items of each list the summary carries, so one lookup costs the
/// same however long the history is.
pub mod limits {
    /// `waits_before_complaints`.
    pub const WAIT_EVIDENCE: i64 = 20;
    /// `recent_contacts`.
    pub const RECENT_CONTACTS: i64 = 5;
    /// `recent_events` and `recent_campaigns` (each, within 30 days).
    pub const RECENT_EVENTS: i64 = 20;
    /// `affinity_agent_ids`.
    pub const AFFINITY_AGENTS: i64 = 5;
}
