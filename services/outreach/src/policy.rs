//! The care policy: what care each need gets, when calls are allowed, how
//! outbound is blended with inbound, as a strictly validated TOML file that
//! can be reloaded while the scheduler runs.
//!
//! A policy is refused as a whole when anything in it is unknown or
//! impossible, and the error names the line, so an operator's typo never
//! turns into silently different care. [`PolicyHandle`] holds the policy in
//! force; [`watch`] swaps in a new one on SIGHUP or when the file changes,
//! and keeps the old one when the new file is bad.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use rapport_proto::{Channel, Need};
use serde::Deserialize;

/// The policy used when no file is given; also the documented example.
pub const DEFAULT_POLICY: &str = include_str!("../../../policy/outreach.toml");

/// Longest cadence or period the policy may set: ten years. Anything
/// longer is a unit mistake.
const MAX_DAYS: u32 = 3650;
/// The most attempts a single task may make; more is harassment.
const MAX_ATTEMPTS: u32 = 20;

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not TOML, or does not fit the policy's shape (unknown
    /// key, wrong type, unknown time zone, bad time of day...).
    #[error("{}{message}", at(*line))]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// The shape is right but a value is impossible.
    #[error("{}{key} {problem}", at(*line))]
    Invalid {
        line: Option<usize>,
        key: String,
        problem: String,
    },
    /// The file could not be read.
    #[error("cannot read policy {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

impl PolicyError {
    /// The 1-based line at fault, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Invalid { line, .. } => *line,
            Self::Read { .. } => None,
        }
    }
}

/// The whole care policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarePolicy {
    /// Free version label, logged on every (re)load.
    pub version: String,
    /// Periodic care per need.
    pub needs: Needs,
    /// Exclusive activities that care calls may invite to.
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// Check-in after a long silence.
    pub check_in: CheckIn,
    /// Follow-up after a resolved complaint.
    pub soothing_follow_up: SoothingFollowUp,
    /// Callbacks requested by routing.
    #[serde(default)]
    pub callbacks: Callbacks,
    /// Follow-up after a field account manager's visit.
    pub visit_follow_up: VisitFollowUp,
    /// What compensation-seeking customers may be offered.
    #[serde(default)]
    pub compensation_guard: CompensationGuard,
    /// Pre-dispatch rules: legal hours, holidays, caps, quiet periods.
    #[serde(default)]
    pub compliance: Compliance,
    /// Call blending with inbound and dialer pacing.
    #[serde(default)]
    pub blending: Blending,
    /// Claim leases and dial redelivery.
    #[serde(default)]
    pub dispatch: Dispatch,
    /// Defaults of the inbound forecast and staffing estimate.
    #[serde(default)]
    pub forecast: ForecastDefaults,
}

/// One table per need; all six are required so no need is silently left
/// without care.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    pub recognition: NeedPolicy,
    pub soothing: NeedPolicy,
    pub compensation: NeedPolicy,
    pub improvement_measures: NeedPolicy,
    pub concrete_plan: NeedPolicy,
    pub just_talk: NeedPolicy,
}

impl Needs {
    /// The table of a need, `None` for `NEED_UNSPECIFIED`.
    pub fn get(&self, need: Need) -> Option<&NeedPolicy> {
        Some(match need {
            Need::Recognition => &self.recognition,
            Need::Soothing => &self.soothing,
            Need::Compensation => &self.compensation,
            Need::ImprovementMeasures => &self.improvement_measures,
            Need::ConcretePlan => &self.concrete_plan,
            Need::JustTalk => &self.just_talk,
            Need::Unspecified => return None,
        })
    }

    fn all(&self) -> [(NeedName, &NeedPolicy); 6] {
        [
            (NeedName::Recognition, &self.recognition),
            (NeedName::Soothing, &self.soothing),
            (NeedName::Compensation, &self.compensation),
            (NeedName::ImprovementMeasures, &self.improvement_measures),
            (NeedName::ConcretePlan, &self.concrete_plan),
            (NeedName::JustTalk, &self.just_talk),
        ]
    }
}

/// Periodic care for one need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeedPolicy {
    /// Days between care contacts.
    pub cadence_days: u32,
    pub channel: ChannelName,
    pub theme: String,
    #[serde(default)]
    pub talking_points: Vec<String>,
    /// Activity ids from `[[activities]]`.
    #[serde(default)]
    pub invitations: Vec<String>,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_minutes")]
    pub retry_spacing_minutes: u32,
    /// Routing skill of the agent to reserve.
    #[serde(default = "default_skill")]
    pub skill: String,
    /// Higher first.
    #[serde(default = "default_priority")]
    pub priority: u32,
}

/// Check-in after `after_days_of_silence` days without any contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub after_days_of_silence: u32,
    pub theme: String,
    #[serde(default)]
    pub talking_points: Vec<String>,
    #[serde(default = "default_channel")]
    pub channel: ChannelName,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_minutes")]
    pub retry_spacing_minutes: u32,
    #[serde(default = "default_skill")]
    pub skill: String,
}

/// Follow-up within `within_days` after a complaint that ended resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoothingFollowUp {
    pub within_days: u32,
    pub theme: String,
    #[serde(default)]
    pub talking_points: Vec<String>,
    #[serde(default = "default_channel")]
    pub channel: ChannelName,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_minutes")]
    pub retry_spacing_minutes: u32,
    #[serde(default = "default_skill")]
    pub skill: String,
}

/// Callbacks accepted by callers instead of waiting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Callbacks {
    /// Priority when routing does not give one.
    pub priority: u32,
    pub max_attempts: u32,
    pub retry_spacing_minutes: u32,
    pub skill: String,
    pub channel: ChannelName,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self {
            priority: 90,
            max_attempts: 3,
            retry_spacing_minutes: 10,
            skill: default_skill(),
            channel: ChannelName::Voice,
        }
    }
}

/// Follow-up `days_after_visit` days after a field account manager's
/// visit; it is no longer planned `within_days` after it was due.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitFollowUp {
    pub days_after_visit: u32,
    #[serde(default = "default_visit_within")]
    pub within_days: u32,
    pub theme: String,
    #[serde(default)]
    pub talking_points: Vec<String>,
    #[serde(default = "default_channel")]
    pub channel: ChannelName,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_minutes")]
    pub retry_spacing_minutes: u32,
    #[serde(default = "default_skill")]
    pub skill: String,
}

/// Who counts as compensation-seeking, and what they may still be
/// offered. Such customers are never rewarded with compensation-type
/// offers beyond `allowed_kinds` (DESIGN.md §3, bargain hunting).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompensationGuard {
    /// A declared compensation need heavier than this marks the customer.
    pub need_weight_above: f64,
    /// So do this many compensation requests in 90 days (bargain hunting).
    pub compensation_asked_90d: u32,
    /// Activity kinds such customers may be invited to; also the only
    /// kinds the compensation need may list. `cash` is never allowed.
    pub allowed_kinds: Vec<ActivityKind>,
}

impl Default for CompensationGuard {
    fn default() -> Self {
        Self {
            need_weight_above: 0.0,
            compensation_asked_90d: 3,
            allowed_kinds: vec![ActivityKind::Event, ActivityKind::Program],
        }
    }
}

/// An exclusive activity a care call can invite to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    pub id: String,
    pub title: String,
    pub online: bool,
    pub kind: ActivityKind,
    #[serde(default)]
    pub eligibility: Eligibility,
}

/// Who may be invited; every given condition must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Minimum assets held, whole currency units.
    pub min_assets: Option<i64>,
    /// Business segments; empty means any.
    #[serde(default)]
    pub segments: Vec<String>,
    /// The customer must have one of these needs (weight > 0); empty
    /// means any.
    #[serde(default)]
    pub needs: Vec<NeedName>,
}

/// What an activity gives. `voucher` and `cash` are compensation-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Event,
    Program,
    Voucher,
    Cash,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Program => "program",
            Self::Voucher => "voucher",
            Self::Cash => "cash",
        }
    }

    /// Money or money's worth: what bargain hunters push for.
    pub fn is_compensation(self) -> bool {
        matches!(self, Self::Voucher | Self::Cash)
    }
}

/// A need as written in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedName {
    Recognition,
    Soothing,
    Compensation,
    ImprovementMeasures,
    ConcretePlan,
    JustTalk,
}

impl NeedName {
    pub fn to_proto(self) -> Need {
        match self {
            Self::Recognition => Need::Recognition,
            Self::Soothing => Need::Soothing,
            Self::Compensation => Need::Compensation,
            Self::ImprovementMeasures => Need::ImprovementMeasures,
            Self::ConcretePlan => Need::ConcretePlan,
            Self::JustTalk => Need::JustTalk,
        }
    }

    pub fn from_proto(need: Need) -> Option<Self> {
        Some(match need {
            Need::Recognition => Self::Recognition,
            Need::Soothing => Self::Soothing,
            Need::Compensation => Self::Compensation,
            Need::ImprovementMeasures => Self::ImprovementMeasures,
            Need::ConcretePlan => Self::ConcretePlan,
            Need::JustTalk => Self::JustTalk,
            Need::Unspecified => return None,
        })
    }

    /// The policy's spelling, also used in task keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recognition => "recognition",
            Self::Soothing => "soothing",
            Self::Compensation => "compensation",
            Self::ImprovementMeasures => "improvement_measures",
            Self::ConcretePlan => "concrete_plan",
            Self::JustTalk => "just_talk",
        }
    }
}

/// A contact channel as written in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    Voice,
    Chat,
    Email,
    Social,
    Video,
    FieldVisit,
}

impl ChannelName {
    pub fn to_proto(self) -> Channel {
        match self {
            Self::Voice => Channel::Voice,
            Self::Chat => Channel::Chat,
            Self::Email => Channel::Email,
            Self::Social => Channel::Social,
            Self::Video => Channel::Video,
            Self::FieldVisit => Channel::FieldVisit,
        }
    }
}

/// When care calls may be placed at all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compliance {
    /// Zone of customers whose own zone is unknown.
    pub default_time_zone: TimeZoneName,
    /// Legal calling hours in the customer's local time, every day unless
    /// `days` overrides it.
    pub legal_hours: DayRule,
    /// Per-weekday overrides of `legal_hours`.
    pub days: DayRules,
    /// Local dates without any calls.
    pub holidays: Vec<Holiday>,
    /// At most this many care contacts...
    pub frequency_cap: u32,
    /// ...in this many days.
    pub frequency_window_days: u32,
    /// No care calls this many days after a complaint (the soothing
    /// follow-up and callbacks excepted).
    pub quiet_period_days: u32,
    /// A task blocked by missing consent or do-not-call is looked at
    /// again after this many days.
    pub consent_recheck_days: u32,
}

impl Default for Compliance {
    fn default() -> Self {
        Self {
            default_time_zone: TimeZoneName(Tz::Asia__Shanghai),
            legal_hours: DayRule::Open {
                start_minute: 8 * 60,
                end_minute: 21 * 60,
            },
            days: DayRules::default(),
            holidays: Vec::new(),
            frequency_cap: 2,
            frequency_window_days: 30,
            quiet_period_days: 7,
            consent_recheck_days: 7,
        }
    }
}

impl Compliance {
    /// The legal calling hours of a weekday, `None` when closed.
    pub fn legal_hours(&self, day: Weekday) -> Option<(u32, u32)> {
        let rule = match day {
            Weekday::Mon => &self.days.monday,
            Weekday::Tue => &self.days.tuesday,
            Weekday::Wed => &self.days.wednesday,
            Weekday::Thu => &self.days.thursday,
            Weekday::Fri => &self.days.friday,
            Weekday::Sat => &self.days.saturday,
            Weekday::Sun => &self.days.sunday,
        };
        match rule.as_ref().unwrap_or(&self.legal_hours) {
            DayRule::Closed => None,
            DayRule::Open {
                start_minute,
                end_minute,
            } => Some((*start_minute, *end_minute)),
        }
    }

    /// Whether a local date is a holiday.
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.iter().any(|h| h.0 == date)
    }
}

/// Per-weekday overrides; an unknown weekday name is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayRules {
    pub monday: Option<DayRule>,
    pub tuesday: Option<DayRule>,
    pub wednesday: Option<DayRule>,
    pub thursday: Option<DayRule>,
    pub friday: Option<DayRule>,
    pub saturday: Option<DayRule>,
    pub sunday: Option<DayRule>,
}

/// Legal hours of a day: `"closed"` or `"HH:MM-HH:MM"` (end after start,
/// `24:00` allowed as an end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DayRule {
    Closed,
    /// Minutes after local midnight, `start_minute < end_minute <= 1440`.
    Open {
        start_minute: u32,
        end_minute: u32,
    },
}

impl TryFrom<String> for DayRule {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("closed") {
            return Ok(Self::Closed);
        }
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is neither \"closed\" nor \"HH:MM-HH:MM\""))?;
        let start_minute = parse_hhmm(start.trim())?;
        let end_minute = parse_hhmm(end.trim())?;
        if end_minute <= start_minute {
            return Err(format!("`{text}` ends before it starts"));
        }
        Ok(Self::Open {
            start_minute,
            end_minute,
        })
    }
}

/// `HH:MM` in 00:00..=24:00 as minutes after midnight.
fn parse_hhmm(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time of day HH:MM between 00:00 and 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h * 60 + m > 24 * 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// An IANA time zone name, checked against the tz database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZoneName(pub Tz);

impl TryFrom<String> for TimeZoneName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Tz::from_str(name.trim()).map(Self).map_err(|_| {
            format!("unknown time zone `{name}` (use an IANA name such as Asia/Shanghai)")
        })
    }
}

/// A holiday: a TOML local date (`2026-10-01`) or the same as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct Holiday(pub NaiveDate);

impl TryFrom<toml::Value> for Holiday {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
            other => return Err(format!("holiday `{other}` is not a date YYYY-MM-DD")),
        };
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Self)
            .map_err(|_| format!("holiday `{text}` is not a date YYYY-MM-DD"))
    }
}

/// Call blending: outbound only while inbound keeps its reserve.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Blending {
    /// Ready agents always kept free for inbound.
    pub inbound_reserve_agents: u32,
    /// Ready agents needed beyond the reserve before a care call goes out.
    pub min_ready_agents: u32,
    /// Dial requests per second per dialer.
    pub max_dials_per_second: u32,
}

impl Default for Blending {
    fn default() -> Self {
        Self {
            inbound_reserve_agents: 2,
            min_ready_agents: 1,
            max_dials_per_second: 5,
        }
    }
}

impl Blending {
    /// Whether a care call may be dispatched with this many ready agents.
    pub fn may_dispatch(&self, ready_agents: u32) -> bool {
        ready_agents >= self.inbound_reserve_agents + self.min_ready_agents.max(1)
    }
}

/// Claiming and delivery timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dispatch {
    /// How long a claim holds a task before it returns to the index.
    pub lease_seconds: u32,
    /// Tasks claimed per round trip.
    pub claim_batch: u32,
    /// Unacknowledged dial requests are redelivered after this long.
    pub redelivery_seconds: u32,
    /// A dispatched care call with no outcome after this long (the dialer
    /// lost it after acknowledging) counts as not answered: it is retried
    /// with the task's spacing, so no customer's care stops silently.
    pub outcome_timeout_minutes: u32,
}

impl Default for Dispatch {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            claim_batch: 100,
            redelivery_seconds: 60,
            outcome_timeout_minutes: 120,
        }
    }
}

/// Defaults of `GetForecast` when the request leaves them out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastDefaults {
    /// Weeks of contact history averaged per hour of week.
    pub history_weeks: u32,
    /// Fraction of contacts answered within `target_answer_s`.
    pub target_service_level: f64,
    pub target_answer_s: u32,
    /// Handle time assumed when history has none, seconds.
    pub mean_handle_s: u32,
}

impl Default for ForecastDefaults {
    fn default() -> Self {
        Self {
            history_weeks: 8,
            target_service_level: 0.8,
            target_answer_s: 20,
            mean_handle_s: 180,
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_retry_minutes() -> u32 {
    120
}
fn default_skill() -> String {
    "care".to_owned()
}
fn default_priority() -> u32 {
    50
}
fn default_channel() -> ChannelName {
    ChannelName::Voice
}
fn default_visit_within() -> u32 {
    7
}

impl CarePolicy {
    /// Parses and validates a policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy: Self = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            line: e.span().map(|span| line_of_offset(text, span.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        Checker { text }.check(&policy)?;
        Ok(policy)
    }

    /// Loads a policy file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyError> {
        match path {
            None => Self::parse(DEFAULT_POLICY),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text)
            }
        }
    }

    /// An activity by id.
    pub fn activity(&self, id: &str) -> Option<&Activity> {
        self.activities.iter().find(|a| a.id == id)
    }
}

/// 1-based line of a byte offset.
fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where a value lives in the file: a table path (`needs.soothing`), the
/// index among `[[array]]` tables of that path, and the key.
struct Place<'k> {
    table: &'k str,
    nth: usize,
    key: Option<&'k str>,
}

/// Finds lines of keys for semantic errors. Values the serde model has
/// already accepted carry no spans, so the key is searched for within its
/// table: good enough for hand-written policy files, and it falls back to
/// the table's header, then to no line at all.
struct Checker<'t> {
    text: &'t str,
}

impl Checker<'_> {
    fn line(&self, place: &Place<'_>) -> Option<usize> {
        let mut current = String::new();
        let mut index = 0usize;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut header = None;
        for (number, raw) in self.text.lines().enumerate() {
            let line = raw.trim();
            if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
                current = name.trim().to_owned();
                let n = seen.entry(current.clone()).or_insert(0);
                index = *n;
                *n += 1;
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                current = name.trim().to_owned();
                index = 0;
            } else if current == place.table
                && index == place.nth
                && let Some(key) = place.key
                && let Some(rest) = line.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return Some(number + 1);
            } else {
                continue;
            }
            if current == place.table && index == place.nth && header.is_none() {
                header = Some(number + 1);
            }
        }
        header
    }

    fn fail(&self, place: Place<'_>, problem: impl Into<String>) -> PolicyError {
        let key = match (place.key, place.table.is_empty()) {
            (Some(key), true) => key.to_owned(),
            (Some(key), false) if place.table == "activities" => {
                format!("activities[{}].{key}", place.nth)
            }
            (Some(key), false) => format!("{}.{key}", place.table),
            (None, _) => place.table.to_owned(),
        };
        PolicyError::Invalid {
            line: self.line(&place),
            key,
            problem: problem.into(),
        }
    }

    fn check(&self, p: &CarePolicy) -> Result<(), PolicyError> {
        let top = |key| Place {
            table: "",
            nth: 0,
            key: Some(key),
        };
        if p.version.trim().is_empty() {
            return Err(self.fail(top("version"), "must not be empty"));
        }

        // Activities first: needs refer to them.
        let mut ids = BTreeSet::new();
        for (nth, a) in p.activities.iter().enumerate() {
            let place = |key| Place {
                table: "activities",
                nth,
                key: Some(key),
            };
            if a.id.trim().is_empty() {
                return Err(self.fail(place("id"), "must not be empty"));
            }
            if !ids.insert(a.id.as_str()) {
                return Err(self.fail(place("id"), format!("`{}` is listed twice", a.id)));
            }
            if a.title.trim().is_empty() {
                return Err(self.fail(place("title"), "must not be empty"));
            }
            if a.eligibility.min_assets.is_some_and(|m| m < 0) {
                return Err(self.fail(
                    Place {
                        table: "activities.eligibility",
                        nth,
                        key: Some("min_assets"),
                    },
                    "must not be negative",
                ));
            }
        }

        let guard = &p.compensation_guard;
        let guard_place = |key| Place {
            table: "compensation_guard",
            nth: 0,
            key: Some(key),
        };
        if !(0.0..1.0).contains(&guard.need_weight_above) {
            return Err(self.fail(guard_place("need_weight_above"), "must be in [0, 1)"));
        }
        if guard.compensation_asked_90d == 0 {
            return Err(self.fail(
                guard_place("compensation_asked_90d"),
                "must be at least 1 (0 would mark every customer as bargain hunting)",
            ));
        }
        if guard.allowed_kinds.contains(&ActivityKind::Cash) {
            return Err(self.fail(
                guard_place("allowed_kinds"),
                "must not allow cash: compensation-seeking customers are never offered cash",
            ));
        }

        for (name, need) in p.needs.all() {
            let table = format!("needs.{}", name.as_str());
            let place = |key| Place {
                table: &table,
                nth: 0,
                key: Some(key),
            };
            self.days(place("cadence_days"), need.cadence_days)?;
            self.contact(
                &table,
                &need.theme,
                &need.talking_points,
                need.max_attempts,
                need.retry_spacing_minutes,
                &need.skill,
            )?;
            let mut listed = BTreeSet::new();
            for id in &need.invitations {
                let Some(activity) = p.activity(id) else {
                    return Err(self.fail(
                        place("invitations"),
                        format!("names activity `{id}`, which [[activities]] does not define"),
                    ));
                };
                if !listed.insert(id) {
                    return Err(self.fail(place("invitations"), format!("lists `{id}` twice")));
                }
                // DESIGN.md §3: compensation is answered with free
                // activities and programs, not cash.
                if name == NeedName::Compensation && !guard.allowed_kinds.contains(&activity.kind) {
                    return Err(self.fail(
                        place("invitations"),
                        format!(
                            "offers `{id}` of kind {}; the compensation need may only invite to {}",
                            activity.kind.as_str(),
                            kinds(&guard.allowed_kinds)
                        ),
                    ));
                }
            }
        }

        let c = &p.check_in;
        self.days(
            Place {
                table: "check_in",
                nth: 0,
                key: Some("after_days_of_silence"),
            },
            c.after_days_of_silence,
        )?;
        self.contact(
            "check_in",
            &c.theme,
            &c.talking_points,
            c.max_attempts,
            c.retry_spacing_minutes,
            &c.skill,
        )?;

        let s = &p.soothing_follow_up;
        self.days(
            Place {
                table: "soothing_follow_up",
                nth: 0,
                key: Some("within_days"),
            },
            s.within_days,
        )?;
        self.contact(
            "soothing_follow_up",
            &s.theme,
            &s.talking_points,
            s.max_attempts,
            s.retry_spacing_minutes,
            &s.skill,
        )?;

        let v = &p.visit_follow_up;
        for (key, value) in [
            ("days_after_visit", v.days_after_visit),
            ("within_days", v.within_days),
        ] {
            self.days(
                Place {
                    table: "visit_follow_up",
                    nth: 0,
                    key: Some(key),
                },
                value,
            )?;
        }
        self.contact(
            "visit_follow_up",
            &v.theme,
            &v.talking_points,
            v.max_attempts,
            v.retry_spacing_minutes,
            &v.skill,
        )?;

        let cb = &p.callbacks;
        self.attempts("callbacks", cb.max_attempts, cb.retry_spacing_minutes)?;
        self.skill("callbacks", &cb.skill)?;

        self.compliance(&p.compliance)?;

        let positive = |table: &'static str, key: &'static str, value: u32, max: u32| {
            if value == 0 || value > max {
                Err(self.fail(
                    Place {
                        table,
                        nth: 0,
                        key: Some(key),
                    },
                    format!("must be between 1 and {max}"),
                ))
            } else {
                Ok(())
            }
        };
        positive(
            "blending",
            "max_dials_per_second",
            p.blending.max_dials_per_second,
            10_000,
        )?;
        positive("dispatch", "lease_seconds", p.dispatch.lease_seconds, 3600)?;
        positive("dispatch", "claim_batch", p.dispatch.claim_batch, 10_000)?;
        positive(
            "dispatch",
            "redelivery_seconds",
            p.dispatch.redelivery_seconds,
            86_400,
        )?;
        positive(
            "dispatch",
            "outcome_timeout_minutes",
            p.dispatch.outcome_timeout_minutes,
            7 * 24 * 60,
        )?;
        positive("forecast", "history_weeks", p.forecast.history_weeks, 520)?;
        positive(
            "forecast",
            "target_answer_s",
            p.forecast.target_answer_s,
            3600,
        )?;
        positive(
            "forecast",
            "mean_handle_s",
            p.forecast.mean_handle_s,
            86_400,
        )?;
        let sl = p.forecast.target_service_level;
        if sl.is_nan() || sl <= 0.0 || sl >= 1.0 {
            return Err(self.fail(
                Place {
                    table: "forecast",
                    nth: 0,
                    key: Some("target_service_level"),
                },
                "must be a fraction strictly between 0 and 1",
            ));
        }
        Ok(())
    }

    fn compliance(&self, c: &Compliance) -> Result<(), PolicyError> {
        let place = |key| Place {
            table: "compliance",
            nth: 0,
            key: Some(key),
        };
        if [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .all(|d| c.legal_hours(d).is_none())
        {
            return Err(self.fail(
                place("legal_hours"),
                "leaves no day open for calls (every weekday is closed)",
            ));
        }
        let mut seen = BTreeSet::new();
        for h in &c.holidays {
            if !seen.insert(h.0) {
                return Err(self.fail(place("holidays"), format!("lists {} twice", h.0)));
            }
        }
        if c.frequency_cap == 0 {
            return Err(self.fail(
                place("frequency_cap"),
                "must be at least 1 (0 would forbid every care call)",
            ));
        }
        self.days(place("frequency_window_days"), c.frequency_window_days)?;
        if c.quiet_period_days > MAX_DAYS {
            return Err(self.fail(
                place("quiet_period_days"),
                format!("must be at most {MAX_DAYS}"),
            ));
        }
        self.days(place("consent_recheck_days"), c.consent_recheck_days)?;
        Ok(())
    }

    fn days(&self, place: Place<'_>, value: u32) -> Result<(), PolicyError> {
        if value == 0 {
            Err(self.fail(place, "must be at least 1"))
        } else if value > MAX_DAYS {
            Err(self.fail(place, format!("must be at most {MAX_DAYS}")))
        } else {
            Ok(())
        }
    }

    fn contact(
        &self,
        table: &str,
        theme: &str,
        talking_points: &[String],
        max_attempts: u32,
        retry_spacing_minutes: u32,
        skill: &str,
    ) -> Result<(), PolicyError> {
        let place = |key| Place {
            table,
            nth: 0,
            key: Some(key),
        };
        if theme.trim().is_empty() {
            return Err(self.fail(place("theme"), "must not be empty"));
        }
        if talking_points.iter().any(|t| t.trim().is_empty()) {
            return Err(self.fail(place("talking_points"), "must not contain empty points"));
        }
        self.attempts(table, max_attempts, retry_spacing_minutes)?;
        self.skill(table, skill)
    }

    fn attempts(&self, table: &str, max_attempts: u32, spacing: u32) -> Result<(), PolicyError> {
        let place = |key| Place {
            table,
            nth: 0,
            key: Some(key),
        };
        if max_attempts == 0 {
            return Err(self.fail(place("max_attempts"), "must be at least 1"));
        }
        if max_attempts > MAX_ATTEMPTS {
            return Err(self.fail(
                place("max_attempts"),
                format!("must be at most {MAX_ATTEMPTS}"),
            ));
        }
        // Retries right after each other would ring the customer again
        // while they are still reaching for the phone.
        if max_attempts > 1 && spacing == 0 {
            return Err(self.fail(
                place("retry_spacing_minutes"),
                "must be at least 1 when more than one attempt is allowed",
            ));
        }
        if spacing > MAX_DAYS * 24 * 60 {
            return Err(self.fail(place("retry_spacing_minutes"), "is longer than ten years"));
        }
        Ok(())
    }

    fn skill(&self, table: &str, skill: &str) -> Result<(), PolicyError> {
        if skill.trim().is_empty() {
            return Err(self.fail(
                Place {
                    table,
                    nth: 0,
                    key: Some("skill"),
                },
                "must not be empty",
            ));
        }
        Ok(())
    }
}

fn kinds(list: &[ActivityKind]) -> String {
    if list.is_empty() {
        return "nothing".to_owned();
    }
    list.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The policy in force, shared by every part of the scheduler. Cloning is
/// cheap; readers take an `Arc` snapshot so a reload never changes the
/// policy under a computation that already started.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    inner: Arc<RwLock<Arc<CarePolicy>>>,
}

impl PolicyHandle {
    pub fn new(policy: CarePolicy) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(policy))),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<CarePolicy> {
        // A writer cannot panic while holding the lock (it only assigns),
        // so a poisoned lock still holds a whole policy.
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts a policy in force.
    pub fn replace(&self, policy: CarePolicy) {
        *self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
    }

    /// Loads `path` and puts it in force; on error the old policy stays.
    pub fn reload(&self, path: &Path) -> Result<(), PolicyError> {
        let policy = CarePolicy::load(Some(path))?;
        self.replace(policy);
        Ok(())
    }

    fn reload_logged(&self, path: &Path, why: &str) {
        match self.reload(path) {
            Ok(()) => tracing::info!(
                version = %self.current().version,
                path = %path.display(),
                why,
                "care policy reloaded"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                line = e.line(),
                path = %path.display(),
                why,
                "care policy reload refused; the policy in force is kept"
            ),
        }
    }
}

/// Modification time and size: a difference means the file changed. Both
/// are compared because a quick rewrite can keep the mtime on coarse file
/// systems; polling also sees Kubernetes ConfigMap symlink swaps.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads the policy at `path` into `handle` on SIGHUP and whenever the
/// file's mtime or size changes (polled every `interval`; zero disables
/// polling). Runs until the task is dropped; errors only when the SIGHUP
/// handler cannot be installed. Prefer [`spawn_watch`], which installs the
/// handler before returning so an early SIGHUP cannot kill the process.
pub async fn watch(handle: PolicyHandle, path: PathBuf, interval: Duration) -> std::io::Result<()> {
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    #[cfg(not(unix))]
    let hangup = ();
    let seen = fingerprint(&path);
    watch_with(handle, path, interval, hangup, seen).await;
    Ok(())
}

/// Installs the SIGHUP handler now, then watches in a spawned task.
pub fn spawn_watch(
    handle: PolicyHandle,
    path: PathBuf,
    interval: Duration,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    #[cfg(not(unix))]
    let hangup = ();
    // The file as it is now is the baseline, taken before returning: a
    // change made right after this call is a change, even if the task has
    // not run yet.
    let seen = fingerprint(&path);
    Ok(tokio::spawn(watch_with(
        handle, path, interval, hangup, seen,
    )))
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

async fn watch_with(
    handle: PolicyHandle,
    path: PathBuf,
    interval: Duration,
    hangup: Hangup,
    mut seen: Option<(SystemTime, u64)>,
) {
    #[cfg(unix)]
    let mut hangup = hangup;
    #[cfg(not(unix))]
    let _ = hangup;
    let polling = !interval.is_zero();
    let mut ticker = tokio::time::interval(if polling {
        interval
    } else {
        Duration::from_secs(3600)
    });
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hup = hangup.recv();
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = hup => {
                seen = fingerprint(&path);
                handle.reload_logged(&path, "SIGHUP");
            }
            _ = ticker.tick(), if polling => {
                let now = fingerprint(&path);
                if now != seen {
                    seen = now;
                    handle.reload_logged(&path, "file changed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(find: &str, replace: &str) -> String {
        assert!(
            DEFAULT_POLICY.contains(find),
            "default policy lacks {find:?}"
        );
        DEFAULT_POLICY.replacen(find, replace, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle present")
            + 1
    }

    #[test]
    fn the_embedded_default_loads() {
        let p = CarePolicy::load(None).expect("default policy is valid");
        assert_eq!(p.compliance.frequency_cap, 2);
        assert_eq!(p.compliance.frequency_window_days, 30);
        assert_eq!(p.compliance.quiet_period_days, 7);
        assert_eq!(p.soothing_follow_up.within_days, 2);
        assert_eq!(p.compliance.legal_hours(Weekday::Mon), Some((480, 1260)));
        assert_eq!(p.forecast.target_service_level, 0.8);
        assert_eq!(p.forecast.target_answer_s, 20);
        assert!(p.needs.get(Need::Soothing).is_some());
        assert!(p.needs.get(Need::Unspecified).is_none());
        for need in &p.needs.compensation.invitations {
            assert!(!p.activity(need).expect("defined").kind.is_compensation());
        }
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let text = with("cadence_days = 14", "cadence_days = 14\ncadense = 3");
        let e = CarePolicy::parse(&text).expect_err("unknown key refused");
        assert_eq!(e.line(), Some(line_of(&text, "cadense = 3")), "{e}");
        assert!(e.to_string().contains("cadense"), "{e}");
        assert!(e.to_string().starts_with("line "), "{e}");
    }

    #[test]
    fn a_zero_cadence_names_its_line_and_key() {
        // Soothing's cadence is the first `cadence_days = 14` after its
        // header; the checker must find that one, not another need's.
        let header = DEFAULT_POLICY.find("[needs.soothing]").expect("table");
        let (before, after) = DEFAULT_POLICY.split_at(header);
        let after = after.replacen("cadence_days = 14", "cadence_days = 0", 1);
        let text = format!("{before}{after}");
        let e = CarePolicy::parse(&text).expect_err("cadence 0 refused");
        let line = line_of(&text, "cadence_days = 0");
        assert_eq!(e.line(), Some(line));
        assert_eq!(
            e.to_string(),
            format!("line {line}: needs.soothing.cadence_days must be at least 1")
        );
    }

    #[test]
    fn an_unknown_time_zone_names_its_line() {
        let text = with(
            "default_time_zone = \"Asia/Shanghai\"",
            "default_time_zone = \"Asia/Xiamen\"",
        );
        let e = CarePolicy::parse(&text).expect_err("bad zone refused");
        assert_eq!(e.line(), Some(line_of(&text, "Asia/Xiamen")), "{e}");
        assert!(e.to_string().contains("unknown time zone"), "{e}");
    }

    #[test]
    fn impossible_values_are_refused() {
        let cases = [
            ("max_attempts = 3", "max_attempts = 0", "max_attempts"),
            (
                "legal_hours = \"08:00-21:00\"",
                "legal_hours = \"21:00-08:00\"",
                "ends before it starts",
            ),
            (
                "legal_hours = \"08:00-21:00\"",
                "legal_hours = \"08:00-25:00\"",
                "between 00:00 and 24:00",
            ),
            ("sunday = ", "sundae = ", "sundae"),
            ("frequency_cap = 2", "frequency_cap = 0", "frequency_cap"),
            (
                "holidays = [",
                "holidays = [2026-01-01, \"2026-01-01\", ",
                "2026-01-01 twice",
            ),
            ("within_days = 2", "within_days = 0", "within_days"),
            (
                "lease_seconds = 30",
                "lease_seconds = 0",
                "dispatch.lease_seconds",
            ),
            ("channel = \"voice\"", "channel = \"pigeon\"", "pigeon"),
            (
                "target_service_level = 0.8",
                "target_service_level = 1.5",
                "target_service_level",
            ),
        ];
        for (find, replace, expect) in cases {
            let text = with(find, replace);
            let e = CarePolicy::parse(&text).expect_err(replace);
            assert!(e.to_string().contains(expect), "{replace}: {e}");
            assert!(e.line().is_some(), "{replace}: {e}");
        }
    }

    #[test]
    fn cash_under_the_compensation_need_is_refused() {
        let text = format!(
            "{}\n[[activities]]\nid = \"refund\"\ntitle = \"Cash back\"\nonline = true\nkind = \"cash\"\n",
            DEFAULT_POLICY
        );
        let header = text.find("[needs.compensation]").expect("table");
        let (before, after) = text.split_at(header);
        let after = after.replacen("invitations = [", "invitations = [\"refund\", ", 1);
        let text = format!("{before}{after}");
        let e = CarePolicy::parse(&text).expect_err("cash refused");
        assert!(e.to_string().contains("kind cash"), "{e}");
        assert!(
            e.to_string().contains("needs.compensation.invitations"),
            "{e}"
        );
        let compensation_line = line_of(&text, "[needs.compensation]");
        assert!(e.line().is_some_and(|l| l > compensation_line), "{e}");

        // Nor may the guard itself allow cash.
        let text = with(
            "allowed_kinds = [\"event\", \"program\"]",
            "allowed_kinds = [\"event\", \"cash\"]",
        );
        let e = CarePolicy::parse(&text).expect_err("cash guard refused");
        assert!(
            e.to_string().contains("compensation_guard.allowed_kinds"),
            "{e}"
        );
    }

    #[test]
    fn an_invitation_to_an_unknown_activity_is_refused() {
        let text = with("invitations = [", "invitations = [\"nope\", ");
        let e = CarePolicy::parse(&text).expect_err("unknown activity");
        assert!(e.to_string().contains("`nope`"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "\"nope\"")));
    }

    #[test]
    fn a_toml_syntax_error_names_its_line() {
        let text = with("frequency_cap = 2", "frequency_cap = = 2");
        let e = CarePolicy::parse(&text).expect_err("syntax");
        assert_eq!(e.line(), Some(line_of(&text, "frequency_cap = = 2")), "{e}");
    }

    #[test]
    fn day_rules_override_legal_hours() {
        let p = CarePolicy::parse(DEFAULT_POLICY).expect("valid");
        assert_eq!(p.compliance.legal_hours(Weekday::Sun), None);
        assert_eq!(p.compliance.legal_hours(Weekday::Sat), Some((600, 1080)));
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        assert!(parse_hhmm("7:5").is_err());
        assert!(parse_hhmm("24:01").is_err());
    }

    #[test]
    fn a_bad_file_keeps_the_policy_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outreach.toml");
        std::fs::write(&path, DEFAULT_POLICY).expect("write");
        let handle = PolicyHandle::new(CarePolicy::load(Some(&path)).expect("valid"));
        let before = handle.current();

        std::fs::write(&path, with("frequency_cap = 2", "frequency_cap = 0")).expect("write");
        let e = handle.reload(&path).expect_err("refused");
        assert!(e.line().is_some());
        assert!(Arc::ptr_eq(&before, &handle.current()));

        std::fs::write(&path, with("frequency_cap = 2", "frequency_cap = 3")).expect("write");
        handle.reload(&path).expect("valid");
        assert_eq!(handle.current().compliance.frequency_cap, 3);
    }

    #[tokio::test]
    async fn watch_reloads_a_changed_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outreach.toml");
        std::fs::write(&path, DEFAULT_POLICY).expect("write");
        let handle = PolicyHandle::new(CarePolicy::load(Some(&path)).expect("valid"));
        let task =
            spawn_watch(handle.clone(), path.clone(), Duration::from_millis(20)).expect("watch");
        // A different size is a change even when the mtime is coarse.
        std::fs::write(&path, with("frequency_cap = 2", "frequency_cap = 11")).expect("write");
        for _ in 0..200 {
            if handle.current().compliance.frequency_cap == 11 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(handle.current().compliance.frequency_cap, 11);
    }
}
