//! Pre-dispatch compliance: whether a care task may be dialed at a given
//! moment, and if not, the next moment it may and why not now.
//!
//! A task that fails a check is never dropped: [`check`] answers with the
//! earliest instant at or after `now` that passes every rule at once —
//! the customer's contact windows and the legal calling hours in the
//! customer's IANA zone (per-weekday rules, holidays), the task's own
//! window, the quiet period after a complaint and the frequency cap. All
//! local-time reasoning goes through chrono-tz, so DST gaps and repeated
//! hours are handled by the tz database rather than by hand.
//!
//! The rule that decides "allowed at t" ([`Rules::blocked_at`]) is the very
//! one the search for the next moment tests its candidates with, so a
//! rescheduled task re-checked at its new time is allowed (a property test
//! holds this).

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use rapport_proto::{CareTaskKind, ContactWindow, Direction, ProfileView, Weekday};

use crate::policy::CarePolicy;

/// How far ahead the next allowed moment is searched for, in days. A
/// year and a bit covers yearly holidays and any weekly pattern; beyond
/// that the rules contradict each other and a person has to look.
pub const SEARCH_DAYS: i64 = 400;

/// Why a task cannot be dialed now. Labels are stable: they are metric
/// label values and appear in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    NoConsent,
    DoNotCall,
    OutsideContactWindow,
    OutsideLegalHours,
    Holiday,
    FrequencyCap,
    QuietPeriod,
    CallbackWindowNotOpen,
    CallbackWindowPassed,
    /// A non-callback task (e.g. a soothing follow-up) before its window.
    TaskWindowNotOpen,
    /// A non-callback task whose window has passed; it is still made, at
    /// the next allowed moment.
    TaskWindowPassed,
    /// No moment in [`SEARCH_DAYS`] passes every rule.
    NoAllowedTime,
}

impl SkipReason {
    /// The stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoConsent => "no_consent",
            Self::DoNotCall => "do_not_call",
            Self::OutsideContactWindow => "outside_contact_window",
            Self::OutsideLegalHours => "outside_legal_hours",
            Self::Holiday => "holiday",
            Self::FrequencyCap => "frequency_cap",
            Self::QuietPeriod => "quiet_period",
            Self::CallbackWindowNotOpen => "callback_window_not_open",
            Self::CallbackWindowPassed => "callback_window_passed",
            Self::TaskWindowNotOpen => "task_window_not_open",
            Self::TaskWindowPassed => "task_window_passed",
            Self::NoAllowedTime => "no_allowed_time",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not now: try again at `at` (never before `now`).
    Reschedule {
        at: DateTime<Utc>,
        reason: SkipReason,
    },
}

/// What compliance needs to know about the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFacts {
    pub kind: CareTaskKind,
    /// The window the contact must happen in, `[start, end)`, if any.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// What compliance needs to know about the customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerFacts {
    /// `None` means the policy's default zone.
    pub time_zone: Option<Tz>,
    /// The customer's contact windows, local time; empty means any time
    /// within legal hours.
    pub windows: Vec<ContactWindow>,
    pub care_calls_consent: bool,
    pub do_not_call: bool,
    pub last_complaint_at: Option<DateTime<Utc>>,
    /// Outbound contacts in the last 30 days, as the profile summary
    /// counted them.
    pub outbound_30d: u32,
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// Times of recent outbound contacts, when known (any order). They let
    /// the frequency cap release as soon as the oldest counted contact
    /// leaves the window instead of after the newest one.
    pub recent_outbound: Vec<DateTime<Utc>>,
}

impl CustomerFacts {
    /// Facts from a profile. An empty or unknown time zone becomes the
    /// policy's default zone.
    pub fn from_view(view: &ProfileView, policy: &CarePolicy) -> Self {
        let customer = view.customer.clone().unwrap_or_default();
        let summary = view.summary.clone().unwrap_or_default();
        let consent = customer.consent.unwrap_or_default();
        let time_zone = customer
            .time_zone
            .trim()
            .parse::<Tz>()
            .ok()
            .or(Some(policy.compliance.default_time_zone.0));
        let recent_outbound = summary
            .recent_contacts
            .iter()
            .filter(|c| c.direction == Direction::Outbound as i32)
            .filter_map(|c| utc(c.started_at.as_ref()))
            .collect();
        Self {
            time_zone,
            windows: customer
                .preferences
                .map(|p| p.contact_windows)
                .unwrap_or_default(),
            care_calls_consent: consent.care_calls,
            do_not_call: consent.do_not_call,
            last_complaint_at: utc(summary.last_complaint_at.as_ref()),
            outbound_30d: summary.outbound_30d,
            last_outbound_at: utc(summary.last_outbound_at.as_ref()),
            recent_outbound,
        }
    }
}

/// A protobuf timestamp as UTC; `None` when absent or out of range.
pub fn utc(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// Whether the task may be dialed at `now`, or when next and why not now.
pub fn check(
    policy: &CarePolicy,
    task: &TaskFacts,
    facts: &CustomerFacts,
    now: DateTime<Utc>,
) -> Verdict {
    let recheck = Duration::days(i64::from(policy.compliance.consent_recheck_days));
    if facts.do_not_call {
        return Verdict::Reschedule {
            at: now + recheck,
            reason: SkipReason::DoNotCall,
        };
    }
    // A callback was asked for by the caller on the call itself, which is
    // consent for that one call; care calls need the standing consent.
    if !facts.care_calls_consent && task.kind != CareTaskKind::Callback {
        return Verdict::Reschedule {
            at: now + recheck,
            reason: SkipReason::NoConsent,
        };
    }
    let rules = Rules::new(policy, task, facts);
    let Some(reason) = rules.blocked_at(now) else {
        return Verdict::Allowed;
    };
    match rules.next_allowed(now) {
        Some(at) => Verdict::Reschedule { at, reason },
        None => Verdict::Reschedule {
            at: now + Duration::days(SEARCH_DAYS),
            reason: SkipReason::NoAllowedTime,
        },
    }
}

/// A customer window reduced to what the search needs.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Bit `n` set = applies on the weekday `n` days from Monday.
    days: u8,
    start: u32,
    end: u32,
}

/// Every rule of one check, precomputed.
pub struct Rules<'p> {
    policy: &'p CarePolicy,
    tz: Tz,
    callback: bool,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// No dialing before this (quiet period end).
    quiet_until: Option<DateTime<Utc>>,
    /// No dialing before this (frequency cap release).
    cap_until: Option<DateTime<Utc>>,
    windows: Vec<Window>,
}

impl<'p> Rules<'p> {
    pub fn new(policy: &'p CarePolicy, task: &TaskFacts, facts: &CustomerFacts) -> Self {
        let c = &policy.compliance;
        let callback = task.kind == CareTaskKind::Callback;
        // The soothing follow-up is the point of the quiet period's
        // exception: it shows the complaint was taken seriously. A
        // callback was requested by the customer.
        let quiet_exempt = callback || task.kind == CareTaskKind::SoothingFollowUp;
        let quiet_until = if quiet_exempt {
            None
        } else {
            facts
                .last_complaint_at
                .map(|at| at + Duration::days(i64::from(c.quiet_period_days)))
        };
        let cap_until = if callback {
            None
        } else {
            cap_release(
                facts,
                c.frequency_cap,
                Duration::days(i64::from(c.frequency_window_days)),
            )
        };
        // Windows that the contract calls impossible (end not after start,
        // end past midnight) are ignored rather than trusted; when none is
        // usable the customer is treated as having no preference, so bad
        // profile data cannot block a customer for ever.
        let windows = facts
            .windows
            .iter()
            .filter(|w| w.start_minute < w.end_minute && w.end_minute <= 1440)
            .map(|w| {
                let mut days = 0u8;
                for d in &w.days {
                    if let Ok(day) = Weekday::try_from(*d)
                        && day != Weekday::Unspecified
                    {
                        days |= 1 << (day as u8 - 1);
                    }
                }
                Window {
                    days: if days == 0 { 0x7f } else { days },
                    start: w.start_minute,
                    end: w.end_minute,
                }
            })
            .collect();
        Self {
            policy,
            tz: facts.time_zone.unwrap_or(c.default_time_zone.0),
            callback,
            window: task.window,
            quiet_until,
            cap_until,
            windows,
        }
    }

    /// The first rule that forbids dialing at `t`, `None` when allowed.
    pub fn blocked_at(&self, t: DateTime<Utc>) -> Option<SkipReason> {
        let mut passed = false;
        if let Some((start, end)) = self.window {
            if t >= end {
                // Late is better than never: a passed window no longer
                // constrains the time, but it is the reason reported.
                passed = true;
            } else if t < start {
                return Some(if self.callback {
                    SkipReason::CallbackWindowNotOpen
                } else {
                    SkipReason::TaskWindowNotOpen
                });
            }
        }
        let reason = self.other_block(t)?;
        Some(match (passed, self.callback) {
            (false, _) => reason,
            (true, true) => SkipReason::CallbackWindowPassed,
            (true, false) => SkipReason::TaskWindowPassed,
        })
    }

    fn other_block(&self, t: DateTime<Utc>) -> Option<SkipReason> {
        if self.quiet_until.is_some_and(|q| t < q) {
            return Some(SkipReason::QuietPeriod);
        }
        if self.cap_until.is_some_and(|c| t < c) {
            return Some(SkipReason::FrequencyCap);
        }
        self.local_block(t)
    }

    /// The local-time rules: holiday, legal hours, contact windows.
    fn local_block(&self, t: DateTime<Utc>) -> Option<SkipReason> {
        let local = t.with_timezone(&self.tz);
        let date = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        let c = &self.policy.compliance;
        if c.is_holiday(date) {
            return Some(SkipReason::Holiday);
        }
        match c.legal_hours(date.weekday()) {
            Some((start, end)) if (start..end).contains(&minute) => {}
            _ => return Some(SkipReason::OutsideLegalHours),
        }
        let bit = 1u8 << date.weekday().num_days_from_monday();
        if !self.windows.is_empty()
            && !self
                .windows
                .iter()
                .any(|w| w.days & bit != 0 && (w.start..w.end).contains(&minute))
        {
            return Some(SkipReason::OutsideContactWindow);
        }
        None
    }

    /// The earliest instant at or after `now` that passes every rule.
    pub fn next_allowed(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut base = now;
        for floor in [self.quiet_until, self.cap_until].into_iter().flatten() {
            base = base.max(floor);
        }
        if let Some((start, end)) = self.window
            && now < end
        {
            if let Some(at) = self.next_local(base.max(start))
                && at < end
            {
                return Some(at);
            }
            // Nothing fits in the window: the first allowed moment after
            // it, when the window no longer applies.
            return self.next_local(base.max(end));
        }
        self.next_local(base)
    }

    /// The local intervals `[start, end)` (minutes) open on a date.
    fn intervals(&self, date: NaiveDate) -> Vec<(u32, u32)> {
        if self.policy.compliance.is_holiday(date) {
            return Vec::new();
        }
        self.weekday_intervals(date.weekday())
    }

    /// Legal hours of a weekday cut down to the customer's windows.
    fn weekday_intervals(&self, day: chrono::Weekday) -> Vec<(u32, u32)> {
        let Some((ls, le)) = self.policy.compliance.legal_hours(day) else {
            return Vec::new();
        };
        if self.windows.is_empty() {
            return vec![(ls, le)];
        }
        let bit = 1u8 << day.num_days_from_monday();
        self.windows
            .iter()
            .filter(|w| w.days & bit != 0)
            .map(|w| (w.start.max(ls), w.end.min(le)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// The earliest instant `>= from` passing the local-time rules.
    ///
    /// The allowed set is a union of intervals, and each begins either at
    /// `from`, where the wall clock reaches an interval's start (either
    /// occurrence of an ambiguous time, or the end of a DST gap), or at an
    /// offset change (the clock jumping back into an interval). Those
    /// candidates are tested in order with the same rule `blocked_at`
    /// uses, so what is returned is allowed by construction.
    fn next_local(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.local_block(from).is_none() {
            return Some(from);
        }
        // Rules that never open on any weekday would make the day-by-day
        // search below walk all its days for nothing.
        let weekly_open = [
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ]
        .into_iter()
        .any(|day| !self.weekday_intervals(day).is_empty());
        if !weekly_open {
            return None;
        }
        // Start a day early: on a day whose clock falls back over
        // midnight, `from` can be on a later local date than an instant
        // just after it.
        let first = from.with_timezone(&self.tz).date_naive().pred_opt()?;
        for offset in 0..=SEARCH_DAYS as u64 + 1 {
            let date = first.checked_add_days(chrono::Days::new(offset))?;
            let mut candidates = Vec::new();
            for (start, _) in self.intervals(date) {
                candidates.extend(self.instants(date, start));
            }
            if let Some(t) = self.transition(date) {
                candidates.push(t);
            }
            candidates.retain(|c| *c >= from);
            candidates.sort();
            if let Some(at) = candidates
                .into_iter()
                .find(|c| self.local_block(*c).is_none())
            {
                return Some(at);
            }
        }
        None
    }

    /// The instants at which the wall clock shows `minute` on `date`: one
    /// normally, two in a repeated (fall-back) hour, and in a skipped
    /// (spring-forward) gap the instant the gap ends.
    fn instants(&self, date: NaiveDate, minute: u32) -> Vec<DateTime<Utc>> {
        let Some(midnight) = date.and_hms_opt(0, 0, 0) else {
            return Vec::new();
        };
        let wall = midnight + Duration::minutes(i64::from(minute));
        match self.tz.from_local_datetime(&wall) {
            chrono::LocalResult::Single(t) => vec![t.to_utc()],
            chrono::LocalResult::Ambiguous(a, b) => vec![a.to_utc(), b.to_utc()],
            chrono::LocalResult::None => self.after_gap(wall).into_iter().collect(),
        }
    }

    /// The first instant whose wall time is after a non-existent `wall`.
    fn after_gap(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        // Gaps are at most a day (Samoa skipped 2011-12-30); two days of
        // minutes bound the walk.
        (1..=2 * 1440)
            .map(|k| wall + Duration::minutes(k))
            .find_map(|w| self.tz.from_local_datetime(&w).earliest())
            .map(|t| t.to_utc())
    }

    /// The instant the UTC offset changes during `date`, if it does.
    fn transition(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let start = *self.instants(date, 0).first()?;
        let end = *self.instants(date.succ_opt()?, 0).first()?;
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let target = offset(end);
        if offset(start) == target {
            return None;
        }
        // Binary search to the second for the first instant with the new
        // offset.
        let (mut lo, mut hi) = (start.timestamp(), end.timestamp());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let t = DateTime::from_timestamp(mid, 0)?;
            if offset(t) == target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// When the frequency cap stops blocking: the moment fewer than `cap`
/// counted contacts remain in the window. With the contact times known,
/// that is when the `cap`-th newest leaves the window; with only the
/// 30-day count (the summary lists just the newest few contacts), it is
/// conservatively when the newest one leaves (then all have). `None` when
/// the cap does not block at all.
fn cap_release(facts: &CustomerFacts, cap: u32, window: Duration) -> Option<DateTime<Utc>> {
    let cap = cap.max(1) as usize;
    let mut times = facts.recent_outbound.clone();
    times.sort_unstable_by(|a, b| b.cmp(a));
    let by_times = times.get(cap - 1).map(|t| *t + window);
    let times_cover_count = times.len() >= facts.outbound_30d as usize;
    let by_count = if !times_cover_count && facts.outbound_30d as usize >= cap {
        facts
            .last_outbound_at
            .or_else(|| times.first().copied())
            .map(|t| t + window)
    } else {
        None
    };
    by_times.into_iter().chain(by_count).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rapport_proto::{Consent, Customer, HistorySummary, Preferences};

    fn policy() -> CarePolicy {
        CarePolicy::parse(crate::policy::DEFAULT_POLICY).expect("default policy")
    }

    fn tz(name: &str) -> Tz {
        name.parse().expect("zone")
    }

    fn local(zone: &str, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        tz(zone)
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("valid local time")
            .to_utc()
    }

    fn facts(zone: &str, windows: Vec<ContactWindow>) -> CustomerFacts {
        CustomerFacts {
            time_zone: Some(tz(zone)),
            windows,
            care_calls_consent: true,
            ..CustomerFacts::default()
        }
    }

    fn window(days: &[Weekday], start: u32, end: u32) -> ContactWindow {
        ContactWindow {
            days: days.iter().map(|d| *d as i32).collect(),
            start_minute: start,
            end_minute: end,
        }
    }

    fn care() -> TaskFacts {
        TaskFacts {
            kind: CareTaskKind::NeedCare,
            window: None,
        }
    }

    fn resched(v: Verdict) -> (DateTime<Utc>, SkipReason) {
        match v {
            Verdict::Reschedule { at, reason } => (at, reason),
            Verdict::Allowed => panic!("expected a reschedule"),
        }
    }

    #[test]
    fn allowed_inside_legal_hours_and_window() {
        let p = policy();
        let f = facts("Asia/Shanghai", vec![window(&[], 9 * 60, 12 * 60)]);
        // Tuesday 2026-03-03 10:00 Shanghai.
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        assert_eq!(check(&p, &care(), &f, now), Verdict::Allowed);
    }

    #[test]
    fn windows_are_in_the_customers_zone() {
        let p = policy();
        // A 09:00-11:00 window in New York; now is 10:00 in Shanghai
        // (Tuesday 2026-03-03 02:00 UTC = Monday 21:00 in New York).
        let f = facts("America/New_York", vec![window(&[], 9 * 60, 11 * 60)]);
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::OutsideLegalHours);
        assert_eq!(at, local("America/New_York", 2026, 3, 3, 9, 0));
    }

    #[test]
    fn new_york_spring_forward() {
        let p = policy();
        // Clocks jump from 02:00 to 03:00 on Sunday 2026-03-08. The
        // default policy closes Sunday; open every hour of every day to
        // look at the window alone.
        let mut p2 = p.clone();
        p2.compliance.days = crate::policy::DayRules::default();
        p2.compliance.legal_hours = crate::policy::DayRule::Open {
            start_minute: 0,
            end_minute: 1440,
        };
        let f = facts(
            "America/New_York",
            vec![window(&[Weekday::Sunday], 2 * 60 + 30, 4 * 60)],
        );
        // Saturday 23:00 local: the 02:30 start does not exist on Sunday;
        // the window opens when the gap ends, 03:00 EDT = 07:00 UTC.
        let now = local("America/New_York", 2026, 3, 7, 23, 0);
        let (at, reason) = resched(check(&p2, &care(), &f, now));
        assert_eq!(reason, SkipReason::OutsideContactWindow);
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap());
        assert_eq!(check(&p2, &care(), &f, at), Verdict::Allowed);

        // Legal hours across the change: 08:00 EST is 13:00 UTC on
        // Friday, 08:00 EDT is 12:00 UTC on Monday.
        let f = facts("America/New_York", vec![]);
        let fri = Utc.with_ymd_and_hms(2026, 3, 6, 12, 30, 0).unwrap();
        let (at, _) = resched(check(&p, &care(), &f, fri));
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 3, 6, 13, 0, 0).unwrap());
        let mon = Utc.with_ymd_and_hms(2026, 3, 9, 11, 30, 0).unwrap();
        let (at, _) = resched(check(&p, &care(), &f, mon));
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap());
    }

    #[test]
    fn new_york_fall_back() {
        // Clocks go back from 02:00 EDT to 01:00 EST on Sunday 2026-11-01,
        // so 01:00-01:59 happens twice.
        let mut p = policy();
        p.compliance.days = crate::policy::DayRules::default();
        p.compliance.legal_hours = crate::policy::DayRule::Open {
            start_minute: 0,
            end_minute: 1440,
        };
        let f = facts("America/New_York", vec![window(&[Weekday::Sunday], 30, 90)]);
        // 01:45 EDT (05:45 UTC) is outside 00:30-01:30; the wall clock
        // re-enters the window at the change, 01:00 EST = 06:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 5, 45, 0).unwrap();
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::OutsideContactWindow);
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap());
        // A window starting in the repeated hour opens at its first
        // occurrence.
        let f = facts(
            "America/New_York",
            vec![window(&[Weekday::Sunday], 75, 100)],
        );
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 4, 0, 0).unwrap();
        let (at, _) = resched(check(&p, &care(), &f, now));
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 1, 5, 15, 0).unwrap());
        // Once the first occurrence has closed (01:50 EDT), the second:
        // 01:15 EST.
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 5, 50, 0).unwrap();
        let (at, _) = resched(check(&p, &care(), &f, now));
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 1, 6, 15, 0).unwrap());
    }

    #[test]
    fn london_summer_time() {
        let p = policy();
        let f = facts("Europe/London", vec![window(&[], 18 * 60, 20 * 60)]);
        // Thursday 2026-03-26 (GMT) 18:00 = 18:00 UTC; a week later (BST)
        // 18:00 = 17:00 UTC.
        let before = Utc.with_ymd_and_hms(2026, 3, 26, 12, 0, 0).unwrap();
        assert_eq!(
            resched(check(&p, &care(), &f, before)).0,
            Utc.with_ymd_and_hms(2026, 3, 26, 18, 0, 0).unwrap()
        );
        let after = Utc.with_ymd_and_hms(2026, 4, 2, 12, 0, 0).unwrap();
        assert_eq!(
            resched(check(&p, &care(), &f, after)).0,
            Utc.with_ymd_and_hms(2026, 4, 2, 17, 0, 0).unwrap()
        );
    }

    #[test]
    fn shanghai_has_no_dst_and_weekdays_matter() {
        let p = policy();
        // Weekday evenings only; now Friday 2026-03-06 20:30 local.
        let f = facts(
            "Asia/Shanghai",
            vec![window(
                &[
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
                19 * 60,
                20 * 60,
            )],
        );
        let now = local("Asia/Shanghai", 2026, 3, 6, 20, 30);
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::OutsideContactWindow);
        // Next Monday 19:00 = 11:00 UTC, whatever the season.
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap());
    }

    #[test]
    fn per_day_rules_and_holidays() {
        let p = policy();
        let f = facts("Asia/Shanghai", vec![]);
        // Saturday 2026-03-07 09:00: Saturday opens at 10:00.
        let now = local("Asia/Shanghai", 2026, 3, 7, 9, 0);
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::OutsideLegalHours);
        assert_eq!(at, local("Asia/Shanghai", 2026, 3, 7, 10, 0));
        // Saturday 18:30: Sunday closed, so Monday 08:00.
        let now = local("Asia/Shanghai", 2026, 3, 7, 18, 30);
        assert_eq!(
            resched(check(&p, &care(), &f, now)).0,
            local("Asia/Shanghai", 2026, 3, 9, 8, 0)
        );
        // Thursday 2026-10-01 is a holiday, as are the 2nd and 3rd
        // (Saturday); the 4th is Sunday (closed): Monday the 5th.
        let now = local("Asia/Shanghai", 2026, 10, 1, 10, 0);
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::Holiday);
        assert_eq!(at, local("Asia/Shanghai", 2026, 10, 5, 8, 0));
    }

    #[test]
    fn frequency_cap() {
        let p = policy();
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let mut f = facts("Asia/Shanghai", vec![]);
        f.outbound_30d = 1;
        f.last_outbound_at = Some(now - Duration::days(2));
        assert_eq!(check(&p, &care(), &f, now), Verdict::Allowed);
        // Two contacts 20 and 2 days ago: the cap releases when the older
        // one leaves the 30-day window, 10 days from now.
        f.outbound_30d = 2;
        f.recent_outbound = vec![now - Duration::days(2), now - Duration::days(20)];
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::FrequencyCap);
        assert_eq!(at, now + Duration::days(10));
        // With only the count known, it waits for the newest to leave.
        f.recent_outbound.clear();
        let (at, _) = resched(check(&p, &care(), &f, now));
        assert_eq!(at, now + Duration::days(28));
        // Callbacks are not capped.
        let callback = TaskFacts {
            kind: CareTaskKind::Callback,
            window: None,
        };
        assert_eq!(check(&p, &callback, &f, now), Verdict::Allowed);
    }

    #[test]
    fn quiet_period_and_the_soothing_exemption() {
        let p = policy();
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let mut f = facts("Asia/Shanghai", vec![]);
        f.last_complaint_at = Some(now - Duration::days(1));
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::QuietPeriod);
        assert_eq!(at, now + Duration::days(6));
        let soothe = TaskFacts {
            kind: CareTaskKind::SoothingFollowUp,
            window: Some((now - Duration::days(1), now + Duration::days(1))),
        };
        assert_eq!(check(&p, &soothe, &f, now), Verdict::Allowed);
        // A quiet period ending at night moves on to legal hours.
        f.last_complaint_at = Some(local("Asia/Shanghai", 2026, 2, 24, 22, 0));
        let (at, _) = resched(check(&p, &care(), &f, now));
        assert_eq!(at, local("Asia/Shanghai", 2026, 3, 4, 8, 0));
    }

    #[test]
    fn consent_and_do_not_call() {
        let p = policy();
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let mut f = facts("Asia/Shanghai", vec![]);
        f.care_calls_consent = false;
        assert_eq!(
            check(&p, &care(), &f, now),
            Verdict::Reschedule {
                at: now + Duration::days(7),
                reason: SkipReason::NoConsent
            }
        );
        let callback = TaskFacts {
            kind: CareTaskKind::Callback,
            window: None,
        };
        assert_eq!(check(&p, &callback, &f, now), Verdict::Allowed);
        f.do_not_call = true;
        assert_eq!(
            resched(check(&p, &callback, &f, now)).1,
            SkipReason::DoNotCall
        );
    }

    #[test]
    fn callback_windows() {
        let p = policy();
        let f = facts("Asia/Shanghai", vec![]);
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let cb = |start: DateTime<Utc>, end: DateTime<Utc>| TaskFacts {
            kind: CareTaskKind::Callback,
            window: Some((start, end)),
        };
        // Not open yet.
        let t = cb(now + Duration::hours(1), now + Duration::hours(2));
        assert_eq!(
            check(&p, &t, &f, now),
            Verdict::Reschedule {
                at: now + Duration::hours(1),
                reason: SkipReason::CallbackWindowNotOpen
            }
        );
        // Open.
        let t = cb(now - Duration::hours(1), now + Duration::hours(1));
        assert_eq!(check(&p, &t, &f, now), Verdict::Allowed);
        // Passed, but now is legal: make the call late rather than never.
        let t = cb(now - Duration::hours(2), now - Duration::hours(1));
        assert_eq!(check(&p, &t, &f, now), Verdict::Allowed);
        // Passed and now is night: the next legal moment, with the reason.
        let night = local("Asia/Shanghai", 2026, 3, 3, 22, 0);
        let t = cb(night - Duration::hours(2), night - Duration::hours(1));
        assert_eq!(
            check(&p, &t, &f, night),
            Verdict::Reschedule {
                at: local("Asia/Shanghai", 2026, 3, 4, 8, 0),
                reason: SkipReason::CallbackWindowPassed
            }
        );
        // A window wholly at night cannot be met: the first legal moment
        // after it.
        let t = cb(night, night + Duration::hours(1));
        let (at, _) = resched(check(&p, &t, &f, night - Duration::minutes(30)));
        assert_eq!(at, local("Asia/Shanghai", 2026, 3, 4, 8, 0));
    }

    #[test]
    fn contradictory_rules_give_up() {
        let p = policy();
        // Sunday only, and Sunday is closed.
        let f = facts("Asia/Shanghai", vec![window(&[Weekday::Sunday], 600, 700)]);
        let now = local("Asia/Shanghai", 2026, 3, 3, 10, 0);
        let (at, reason) = resched(check(&p, &care(), &f, now));
        assert_eq!(reason, SkipReason::NoAllowedTime);
        assert!(at > now);
    }

    #[test]
    fn facts_from_a_profile() {
        let p = policy();
        let at = |s: i64| {
            Some(prost_types::Timestamp {
                seconds: s,
                nanos: 0,
            })
        };
        let view = ProfileView {
            customer: Some(Customer {
                time_zone: "Mars/Olympus".into(),
                preferences: Some(Preferences {
                    contact_windows: vec![window(&[], 60, 120)],
                    ..Preferences::default()
                }),
                consent: Some(Consent {
                    care_calls: true,
                    ..Consent::default()
                }),
                ..Customer::default()
            }),
            summary: Some(HistorySummary {
                outbound_30d: 2,
                last_outbound_at: at(1_000),
                last_complaint_at: at(2_000),
                recent_contacts: vec![
                    rapport_proto::ContactRecord {
                        direction: Direction::Outbound as i32,
                        started_at: at(1_000),
                        ..Default::default()
                    },
                    rapport_proto::ContactRecord {
                        direction: Direction::Inbound as i32,
                        started_at: at(1_500),
                        ..Default::default()
                    },
                ],
                ..HistorySummary::default()
            }),
        };
        let f = CustomerFacts::from_view(&view, &p);
        assert_eq!(f.time_zone, Some(Tz::Asia__Shanghai));
        assert!(f.care_calls_consent && !f.do_not_call);
        assert_eq!(f.windows.len(), 1);
        assert_eq!(f.outbound_30d, 2);
        assert_eq!(
            f.recent_outbound,
            vec![DateTime::from_timestamp(1_000, 0).unwrap()]
        );
        assert_eq!(f.last_complaint_at, DateTime::from_timestamp(2_000, 0));
        assert_eq!(
            SkipReason::CallbackWindowPassed.as_str(),
            "callback_window_passed"
        );
    }

    const ZONES: &[&str] = &[
        "America/New_York",
        "Europe/London",
        "Asia/Shanghai",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "America/Sao_Paulo",
        "Asia/Kolkata",
    ];

    fn arb_window() -> impl Strategy<Value = ContactWindow> {
        (
            proptest::collection::vec(1i32..=7, 0..3),
            0u32..1440,
            1u32..=1440,
        )
            .prop_map(|(days, a, b)| {
                let (start, end) = if a < b {
                    (a, b)
                } else {
                    (b.saturating_sub(1), a.max(b) + 1)
                };
                ContactWindow {
                    days,
                    start_minute: start,
                    end_minute: end.min(1440),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_rescheduled_moment_is_allowed_and_never_before_now(
            now_s in 1_700_000_000i64..1_900_000_000,
            zone in 0..ZONES.len(),
            windows in proptest::collection::vec(arb_window(), 0..3),
            kind in 1i32..=6,
            task_window in proptest::option::of((-72i64 * 60..72 * 60, 1i64..48 * 60)),
            complaint_ago_h in proptest::option::of(0i64..24 * 10),
            outbound_ago_h in proptest::collection::vec(0i64..24 * 40, 0..4),
            open_sunday in any::<bool>(),
        ) {
            let mut p = policy();
            if open_sunday {
                p.compliance.days.sunday = None;
            }
            let now = DateTime::from_timestamp(now_s, 0).unwrap();
            let task = TaskFacts {
                kind: CareTaskKind::try_from(kind).unwrap(),
                window: task_window.map(|(start_min, len_min)| {
                    let start = now + Duration::minutes(start_min);
                    (start, start + Duration::minutes(len_min))
                }),
            };
            let recent: Vec<_> = outbound_ago_h.iter().map(|h| now - Duration::hours(*h)).collect();
            let f = CustomerFacts {
                time_zone: Some(tz(ZONES[zone])),
                windows,
                care_calls_consent: true,
                do_not_call: false,
                last_complaint_at: complaint_ago_h.map(|h| now - Duration::hours(h)),
                outbound_30d: recent.iter().filter(|t| now - **t < Duration::days(30)).count() as u32,
                last_outbound_at: recent.iter().max().copied(),
                recent_outbound: recent,
            };
            match check(&p, &task, &f, now) {
                Verdict::Allowed => {}
                Verdict::Reschedule { at, reason } => {
                    prop_assert!(at >= now);
                    if reason != SkipReason::NoAllowedTime {
                        prop_assert_eq!(check(&p, &task, &f, at), Verdict::Allowed, "at {} for {:?}", at, reason);
                        // Nothing earlier is allowed: one minute before is
                        // blocked (or before now).
                        let before = at - Duration::minutes(1);
                        if before >= now {
                            prop_assert!(check(&p, &task, &f, before) != Verdict::Allowed);
                        }
                    }
                }
            }
        }
    }
}
