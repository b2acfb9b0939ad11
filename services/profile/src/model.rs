//! The profile domain as the store reads and writes it: validated inputs and
//! stored records, independent of the wire format.
//!
//! Enumerations reuse the generated `rapport.v1` enums (they are plain Rust
//! enums), so the domain and the contract cannot drift apart; everything
//! else is a Rust type with real timestamps and no "unset" sentinels where
//! the store needs to tell absence apart.

use chrono::{DateTime, Utc};
pub use rapport_proto::{
    ChangeKind, Channel, ContactOutcome, Direction, Need, TagKind, ValueTier, Weekday,
};

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
    /// Outbound contacts (care calls, callbacks) in the last 30 days.
    pub outbound_30d: u32,
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// The newest contact with a complaint (by start, then contact id).
    pub last_complaint_at: Option<DateTime<Utc>>,
    /// Whether that contact ended RESOLVED (false when there is none).
    pub last_complaint_resolved: bool,
}

/// A customer with their history summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub customer: Customer,
    pub summary: HistorySummary,
}

/// A care note to add. Without an id the store assigns one; with one,
/// adding is idempotent on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCareNote {
    pub customer_id: String,
    pub note_id: Option<String>,
    pub contact_id: String,
    pub author: String,
    pub text: String,
    pub topics: Vec<String>,
    /// Tags the note adds to the customer, in the same transaction.
    pub added_tags: Vec<NewTag>,
}

/// A stored care note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareNote {
    pub note_id: String,
    pub customer_id: String,
    pub contact_id: String,
    pub author: String,
    pub text: String,
    pub topics: Vec<String>,
    /// The tags as they were added (kept even when a tag is later removed).
    pub added_tags: Vec<Tag>,
    pub created_at: DateTime<Utc>,
}

/// One entry of the change feed (the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Grows with every change, in commit order; the resume token.
    pub change_id: i64,
    pub customer_id: String,
    pub kind: ChangeKind,
    /// The contact, event or note it is about; empty otherwise.
    pub ref_id: String,
    pub at: DateTime<Utc>,
}

/// A field of [`Customer`] a partial update may replace (a field-mask path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerField {
    Name,
    FormOfAddress,
    Locale,
    Language,
    Dialect,
    Region,
    City,
    TimeZone,
    AgeBand,
    Occupation,
    Assets,
    Contribution,
    PotentialValue,
    Segment,
    DeclaredNeeds,
    SocialFollowers,
    MediaPresence,
    Phones,
    /// Replaces every tag (an empty list removes them all).
    Tags,
    PreferredAgentId,
    DedicatedFieldManagerId,
    PreferredChannel,
    ContactWindows,
    PreferredLanguage,
    CareCalls,
    DoNotCall,
    DoNotCallSource,
    DoNotCallAt,
}

impl CustomerField {
    /// The field-mask path naming it, and the parent paths that select it
    /// along with their siblings.
    pub const ALL: [(&'static str, Self); 28] = [
        ("name", Self::Name),
        ("form_of_address", Self::FormOfAddress),
        ("locale", Self::Locale),
        ("language", Self::Language),
        ("dialect", Self::Dialect),
        ("region", Self::Region),
        ("city", Self::City),
        ("time_zone", Self::TimeZone),
        ("age_band", Self::AgeBand),
        ("occupation", Self::Occupation),
        ("assets", Self::Assets),
        ("contribution", Self::Contribution),
        ("potential_value", Self::PotentialValue),
        ("segment", Self::Segment),
        ("declared_needs", Self::DeclaredNeeds),
        ("public_influence.social_followers", Self::SocialFollowers),
        ("public_influence.media_presence", Self::MediaPresence),
        ("phones", Self::Phones),
        ("tags", Self::Tags),
        ("preferences.preferred_agent_id", Self::PreferredAgentId),
        (
            "preferences.dedicated_field_manager_id",
            Self::DedicatedFieldManagerId,
        ),
        ("preferences.preferred_channel", Self::PreferredChannel),
        ("preferences.contact_windows", Self::ContactWindows),
        ("preferences.language", Self::PreferredLanguage),
        ("consent.care_calls", Self::CareCalls),
        ("consent.do_not_call", Self::DoNotCall),
        ("consent.do_not_call_source", Self::DoNotCallSource),
        ("consent.do_not_call_at", Self::DoNotCallAt),
    ];

    /// The fields a mask path selects: a leaf, or every leaf under a
    /// message path (`preferences`, `consent`, `public_influence`); empty
    /// for an unknown path.
    pub fn selected_by(path: &str) -> Vec<Self> {
        Self::ALL
            .iter()
            .filter(|(name, _)| {
                *name == path
                    || name
                        .strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(_, field)| *field)
            .collect()
    }
}

/// A partial update: the fields to replace, with their new values in
/// `values` (its other fields are ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerPatch {
    pub fields: Vec<CustomerField>,
    pub values: CustomerInput,
}

impl CustomerPatch {
    /// `current` with the patched fields replaced. `current.tags` is `None`
    /// (keep) unless the patch replaces the tags.
    pub fn apply(&self, current: &mut CustomerInput) {
        let v = &self.values;
        for field in &self.fields {
            match field {
                CustomerField::Name => current.name.clone_from(&v.name),
                CustomerField::FormOfAddress => {
                    current.form_of_address.clone_from(&v.form_of_address);
                }
                CustomerField::Locale => current.locale.clone_from(&v.locale),
                CustomerField::Language => current.language.clone_from(&v.language),
                CustomerField::Dialect => current.dialect.clone_from(&v.dialect),
                CustomerField::Region => current.region.clone_from(&v.region),
                CustomerField::City => current.city.clone_from(&v.city),
                CustomerField::TimeZone => current.time_zone.clone_from(&v.time_zone),
                CustomerField::AgeBand => current.age_band.clone_from(&v.age_band),
                CustomerField::Occupation => current.occupation.clone_from(&v.occupation),
                CustomerField::Assets => current.assets = v.assets,
                CustomerField::Contribution => current.contribution = v.contribution,
                CustomerField::PotentialValue => current.potential_value = v.potential_value,
                CustomerField::Segment => current.segment.clone_from(&v.segment),
                CustomerField::DeclaredNeeds => {
                    current.declared_needs.clone_from(&v.declared_needs);
                }
                CustomerField::SocialFollowers => {
                    current.public_influence.social_followers = v.public_influence.social_followers;
                }
                CustomerField::MediaPresence => {
                    current.public_influence.media_presence = v.public_influence.media_presence;
                }
                CustomerField::Phones => current.phones.clone_from(&v.phones),
                CustomerField::Tags => {
                    current.tags = Some(v.tags.clone().unwrap_or_default());
                }
                CustomerField::PreferredAgentId => current
                    .preferences
                    .preferred_agent_id
                    .clone_from(&v.preferences.preferred_agent_id),
                CustomerField::DedicatedFieldManagerId => current
                    .preferences
                    .dedicated_field_manager_id
                    .clone_from(&v.preferences.dedicated_field_manager_id),
                CustomerField::PreferredChannel => {
                    current.preferences.preferred_channel = v.preferences.preferred_channel;
                }
                CustomerField::ContactWindows => current
                    .preferences
                    .contact_windows
                    .clone_from(&v.preferences.contact_windows),
                CustomerField::PreferredLanguage => current
                    .preferences
                    .language
                    .clone_from(&v.preferences.language),
                CustomerField::CareCalls => current.consent.care_calls = v.consent.care_calls,
                CustomerField::DoNotCall => current.consent.do_not_call = v.consent.do_not_call,
                CustomerField::DoNotCallSource => current
                    .consent
                    .do_not_call_source
                    .clone_from(&v.consent.do_not_call_source),
                CustomerField::DoNotCallAt => {
                    current.consent.do_not_call_at = v.consent.do_not_call_at;
                }
            }
        }
    }
}

/// What SearchCustomers filters on; every criterion given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchFilter {
    pub segment: Option<String>,
    pub need: Option<Need>,
    /// Customers with at least one unexpired tag of this kind.
    pub tag_kind: Option<TagKind>,
    pub tier: Option<ValueTier>,
}

/// Where a page of contacts starts: after this (started_at, contact_id),
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCursor {
    pub started_at: DateTime<Utc>,
    pub contact_id: String,
}

/// Everything stored about one customer (privacy export).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerExport {
    pub customer: Customer,
    /// Newest first.
    pub contacts: Vec<Contact>,
    pub care_notes: Vec<CareNote>,
    pub events: Vec<Event>,
    pub campaigns: Vec<CampaignExposure>,
}

/// One customer of a bulk import, validated: written whole or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportCustomer {
    /// Replaces the stored customer like an upsert; `tags: Some` replaces
    /// the tags.
    pub customer: CustomerInput,
    /// Recorded idempotently on their ids.
    pub contacts: Vec<Contact>,
}

/// The value tier, as policy/classification.toml defines it: VIP when any
/// one measure reaches its VIP threshold, else PREFERRED when any one
/// reaches its PREFERRED threshold, else STANDARD.
///
/// The profile stores the tier of every customer (so CRM can search by it
/// through an index) and computes it on each write with these thresholds,
/// which mirror the policy file's defaults; a unit test fails when they
/// drift apart, and changing them needs a migration that recomputes the
/// column (as `20250201000001_crm.sql` does).
pub mod tier {
    use super::ValueTier;

    /// (assets, contribution, potential value) for VIP.
    pub const VIP: (i64, i64, i64) = (5_000_000, 500_000, 20_000_000);
    /// (assets, contribution, potential value) for PREFERRED.
    pub const PREFERRED: (i64, i64, i64) = (500_000, 50_000, 2_000_000);

    /// The tier of a customer with these value inputs.
    pub fn of(assets: i64, contribution: i64, potential_value: i64) -> ValueTier {
        let reaches =
            |(a, c, p): (i64, i64, i64)| assets >= a || contribution >= c || potential_value >= p;
        if reaches(VIP) {
            ValueTier::Vip
        } else if reaches(PREFERRED) {
            ValueTier::Preferred
        } else {
            ValueTier::Standard
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The stored tier must be the one classification computes.
        #[test]
        fn thresholds_match_the_classification_policy() {
            let policy: toml::Table =
                toml::from_str(include_str!("../../../policy/classification.toml"))
                    .expect("the policy parses");
            let tier = |name: &str| -> (i64, i64, i64) {
                let t = &policy["tiers"][name];
                let get = |key: &str| {
                    t.get(key)
                        .and_then(toml::Value::as_integer)
                        .unwrap_or(i64::MAX)
                };
                (get("assets"), get("contribution"), get("potential_value"))
            };
            assert_eq!(tier("vip"), VIP);
            assert_eq!(tier("preferred"), PREFERRED);
        }

        #[test]
        fn any_one_measure_reaches_a_tier() {
            assert_eq!(of(8_000_000, 0, 0), ValueTier::Vip);
            assert_eq!(of(0, 500_000, 0), ValueTier::Vip);
            assert_eq!(of(0, 0, 2_000_000), ValueTier::Preferred);
            assert_eq!(of(499_999, 49_999, 1_999_999), ValueTier::Standard);
        }
    }
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
