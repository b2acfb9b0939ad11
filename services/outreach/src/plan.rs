//! Care planning: from a customer's profile, the policy and the time, the
//! care tasks the policy calls for, each with a human-readable reason and a
//! deterministic key; and after a contact's outcome, what happens next.
//!
//! Planning is a pure function of its inputs, so recomputing a customer's
//! plan (on every profile change, or in a full rebuild) yields the same
//! keys and never duplicates a task. Tasks are planned ahead (a check-in
//! is planned for when the silence will be long enough, not only once it
//! is), because the due index is kept current from profile changes, and a
//! customer who falls silent produces no change to react to.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rapport_proto::{
    CareOutcome, CareTaskKind, Channel, Customer, Direction, HistorySummary, Invitation, Need,
    ProfileView,
};

use crate::compliance::utc;
use crate::policy::{Activity, CarePolicy, NeedName};

/// One care task the policy calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask {
    pub kind: CareTaskKind,
    pub need: Option<Need>,
    pub due_at: DateTime<Utc>,
    /// `[start, end)` the contact should happen in, if constrained.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Higher first.
    pub priority: u32,
    pub channel: Channel,
    pub theme: String,
    pub talking_points: Vec<String>,
    pub invitations: Vec<Invitation>,
    /// Why the task exists and why it is due when it is.
    pub reason: String,
    /// Dedicated field manager or preferred agent; empty when none.
    pub preferred_agent_id: String,
    /// Routing skill of the agent to reserve.
    pub skill: String,
    pub max_attempts: u32,
    pub retry_spacing: Duration,
    /// Deterministic task id: the same situation always gives the same key.
    pub key: String,
}

/// The policy-driven tasks of one customer, soonest first (then higher
/// priority first). A view without a customer plans nothing.
pub fn plan(policy: &CarePolicy, view: &ProfileView, now: DateTime<Utc>) -> Vec<PlannedTask> {
    let Some(customer) = view.customer.as_ref() else {
        return Vec::new();
    };
    let empty = HistorySummary::default();
    let summary = view.summary.as_ref().unwrap_or(&empty);
    let ctx = Context::new(policy, customer, summary, now);
    let mut tasks = Vec::new();
    for (&need, &weight) in &ctx.needs {
        tasks.push(ctx.need_task(need, weight));
    }
    tasks.extend(ctx.check_in());
    tasks.extend(ctx.soothing_follow_up());
    tasks.extend(ctx.visit_follow_up());
    tasks.sort_by(|a, b| {
        a.due_at
            .cmp(&b.due_at)
            .then(b.priority.cmp(&a.priority))
            .then(a.key.cmp(&b.key))
    });
    tasks
}

/// What [`plan`] works from, computed once per customer.
struct Context<'a> {
    policy: &'a CarePolicy,
    customer: &'a Customer,
    summary: &'a HistorySummary,
    now: DateTime<Utc>,
    /// Declared needs with a positive weight (the heaviest when repeated).
    needs: BTreeMap<NeedName, f64>,
    preferred_agent_id: String,
    compensation_seeking: bool,
    created_at: Option<DateTime<Utc>>,
    last_outbound_at: Option<DateTime<Utc>>,
}

impl<'a> Context<'a> {
    fn new(
        policy: &'a CarePolicy,
        customer: &'a Customer,
        summary: &'a HistorySummary,
        now: DateTime<Utc>,
    ) -> Self {
        let mut needs = BTreeMap::new();
        for nw in &customer.declared_needs {
            let Some(name) = Need::try_from(nw.need).ok().and_then(NeedName::from_proto) else {
                continue;
            };
            if nw.weight.is_finite() && nw.weight > 0.0 {
                let w = needs.entry(name).or_insert(0.0f64);
                *w = w.max(nw.weight.min(1.0));
            }
        }
        let guard = &policy.compensation_guard;
        let compensation_seeking = needs
            .get(&NeedName::Compensation)
            .is_some_and(|w| *w > guard.need_weight_above)
            || summary.compensation_asked_90d >= guard.compensation_asked_90d;
        Self {
            policy,
            customer,
            summary,
            now,
            needs,
            preferred_agent_id: preferred_agent(customer),
            compensation_seeking,
            created_at: utc(customer.created_at.as_ref()),
            last_outbound_at: utc(summary.last_outbound_at.as_ref()),
        }
    }

    fn id(&self) -> &str {
        &self.customer.customer_id
    }

    fn need_task(&self, need: NeedName, weight: f64) -> PlannedTask {
        let np = self.need_policy(need);
        let cadence = days(np.cadence_days);
        let (due_at, last) = match (self.last_outbound_at, self.created_at) {
            (Some(last), _) => (last + cadence, format!("last care call {}", day(last))),
            (None, Some(created)) => (
                created + cadence,
                format!("no care call yet, customer since {}", day(created)),
            ),
            (None, None) => (self.now, "no care call yet".to_owned()),
        };
        let due_at = due_at.max(self.now);
        PlannedTask {
            kind: CareTaskKind::NeedCare,
            need: Some(need.to_proto()),
            due_at,
            window: None,
            priority: np.priority,
            channel: np.channel.to_proto(),
            theme: np.theme.clone(),
            talking_points: np.talking_points.clone(),
            invitations: self.invitations(&np.invitations),
            reason: format!(
                "{} need (weight {}): {} every {} days; {last}",
                need.as_str().replace('_', " "),
                (weight * 100.0).round() / 100.0,
                care_word(need),
                np.cadence_days,
            ),
            preferred_agent_id: self.preferred_agent_id.clone(),
            skill: np.skill.clone(),
            max_attempts: np.max_attempts,
            retry_spacing: minutes(np.retry_spacing_minutes),
            key: format!("need:{}:{}", self.id(), need.as_str()),
        }
    }

    fn need_policy(&self, need: NeedName) -> &'a crate::policy::NeedPolicy {
        let needs = &self.policy.needs;
        match need {
            NeedName::Recognition => &needs.recognition,
            NeedName::Soothing => &needs.soothing,
            NeedName::Compensation => &needs.compensation,
            NeedName::ImprovementMeasures => &needs.improvement_measures,
            NeedName::ConcretePlan => &needs.concrete_plan,
            NeedName::JustTalk => &needs.just_talk,
        }
    }

    /// The listed activities this customer is eligible for. Compensation
    /// seekers only get the kinds the guard allows, whatever the need
    /// lists: the scheduler never rewards bargain hunting.
    fn invitations(&self, ids: &[String]) -> Vec<Invitation> {
        ids.iter()
            .filter_map(|id| self.policy.activity(id))
            .filter(|a| self.eligible(a))
            .filter(|a| {
                !self.compensation_seeking
                    || self
                        .policy
                        .compensation_guard
                        .allowed_kinds
                        .contains(&a.kind)
            })
            .map(|a| Invitation {
                activity_id: a.id.clone(),
                title: a.title.clone(),
                online: a.online,
            })
            .collect()
    }

    fn eligible(&self, activity: &Activity) -> bool {
        let e = &activity.eligibility;
        e.min_assets.is_none_or(|min| self.customer.assets >= min)
            && (e.segments.is_empty()
                || e.segments
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(self.customer.segment.trim())))
            && (e.needs.is_empty() || e.needs.iter().any(|n| self.needs.contains_key(n)))
    }

    fn check_in(&self) -> Option<PlannedTask> {
        let c = &self.policy.check_in;
        let last_contact = utc(self.summary.last_contact_at.as_ref());
        let (since, what) = match (last_contact, self.created_at) {
            (Some(at), _) => (at, format!("last contact {}", day(at))),
            (None, Some(at)) => (at, format!("no contact since joining on {}", day(at))),
            // Nothing to count the silence from.
            (None, None) => return None,
        };
        let due_at = (since + days(c.after_days_of_silence)).max(self.now);
        Some(PlannedTask {
            kind: CareTaskKind::CheckIn,
            need: None,
            due_at,
            window: None,
            priority: c.priority,
            channel: c.channel.to_proto(),
            theme: c.theme.clone(),
            talking_points: c.talking_points.clone(),
            invitations: Vec::new(),
            reason: format!(
                "check-in after {} days of silence; {what}",
                c.after_days_of_silence
            ),
            preferred_agent_id: self.preferred_agent_id.clone(),
            skill: c.skill.clone(),
            max_attempts: c.max_attempts,
            retry_spacing: minutes(c.retry_spacing_minutes),
            key: format!("checkin:{}", self.id()),
        })
    }

    fn soothing_follow_up(&self) -> Option<PlannedTask> {
        let s = &self.policy.soothing_follow_up;
        let complaint = utc(self.summary.last_complaint_at.as_ref())?;
        if !self.summary.last_complaint_resolved {
            return None;
        }
        let end = complaint + days(s.within_days);
        if self.now >= end {
            return None;
        }
        // An outbound contact after the complaint is the follow-up (or a
        // later one): planning another would call twice.
        if self.last_outbound_at.is_some_and(|at| at > complaint) {
            return None;
        }
        Some(PlannedTask {
            kind: CareTaskKind::SoothingFollowUp,
            need: Some(Need::Soothing),
            due_at: self.now.max(complaint),
            window: Some((complaint, end)),
            priority: s.priority,
            channel: s.channel.to_proto(),
            theme: s.theme.clone(),
            talking_points: s.talking_points.clone(),
            invitations: Vec::new(),
            reason: format!(
                "soothing follow-up: the complaint of {} was resolved; follow up within {} days, by {}",
                minute(complaint),
                s.within_days,
                minute(end),
            ),
            preferred_agent_id: self.preferred_agent_id.clone(),
            skill: s.skill.clone(),
            max_attempts: s.max_attempts,
            retry_spacing: minutes(s.retry_spacing_minutes),
            key: format!("soothe:{}:{}", self.id(), complaint.timestamp()),
        })
    }

    /// A follow-up of the newest field visit among the recent contacts,
    /// unless an outbound contact already followed it.
    fn visit_follow_up(&self) -> Option<PlannedTask> {
        let v = &self.policy.visit_follow_up;
        let (visit, visit_at) = self
            .summary
            .recent_contacts
            .iter()
            .filter(|c| c.channel == Channel::FieldVisit as i32)
            .filter_map(|c| Some((c, utc(c.started_at.as_ref())?)))
            .max_by_key(|(_, at)| *at)?;
        let due = visit_at + days(v.days_after_visit);
        let end = due + days(v.within_days);
        if self.now >= end {
            return None;
        }
        let followed = self.summary.recent_contacts.iter().any(|c| {
            c.direction == Direction::Outbound as i32
                && c.channel != Channel::FieldVisit as i32
                && utc(c.started_at.as_ref()).is_some_and(|at| at > visit_at)
        });
        if followed {
            return None;
        }
        // The manager who visited calls back; failing that, the
        // customer's own manager or preferred agent.
        let agent = if visit.agent_id.is_empty() {
            self.preferred_agent_id.clone()
        } else {
            visit.agent_id.clone()
        };
        Some(PlannedTask {
            kind: CareTaskKind::VisitFollowUp,
            need: None,
            due_at: due.max(self.now),
            window: Some((due, end)),
            priority: v.priority,
            channel: v.channel.to_proto(),
            theme: v.theme.clone(),
            talking_points: v.talking_points.clone(),
            invitations: Vec::new(),
            reason: format!(
                "visit follow-up {} days after the field visit of {}",
                v.days_after_visit,
                day(visit_at)
            ),
            preferred_agent_id: agent,
            skill: v.skill.clone(),
            max_attempts: v.max_attempts,
            retry_spacing: minutes(v.retry_spacing_minutes),
            key: format!("visit:{}:{}", self.id(), visit_at.timestamp()),
        })
    }
}

/// The agent a customer's care calls go to first: their dedicated field
/// account manager, else their preferred agent; empty when neither.
pub fn preferred_agent(customer: &Customer) -> String {
    let prefs = customer.preferences.as_ref();
    prefs
        .map(|p| p.dedicated_field_manager_id.trim())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            prefs
                .map(|p| p.preferred_agent_id.trim())
                .filter(|id| !id.is_empty())
        })
        .unwrap_or_default()
        .to_owned()
}

/// A callback requested by routing, as a task. `priority` 0 means the
/// policy's default; the due time is the window's start (or now, if it
/// already opened).
pub fn callback_task(
    policy: &CarePolicy,
    customer_id: &str,
    call_id: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    priority: u32,
    preferred_agent_id: &str,
    now: DateTime<Utc>,
) -> PlannedTask {
    let cb = &policy.callbacks;
    PlannedTask {
        kind: CareTaskKind::Callback,
        need: None,
        due_at: window.0.max(now),
        window: Some(window),
        priority: if priority == 0 { cb.priority } else { priority },
        channel: cb.channel.to_proto(),
        theme: "Callback as promised".to_owned(),
        talking_points: vec!["Apologise for the wait and pick up the caller's request".to_owned()],
        invitations: Vec::new(),
        reason: format!(
            "callback accepted on call {call_id} for {} to {}",
            minute(window.0),
            minute(window.1)
        ),
        preferred_agent_id: preferred_agent_id.to_owned(),
        skill: cb.skill.clone(),
        max_attempts: cb.max_attempts,
        retry_spacing: minutes(cb.retry_spacing_minutes),
        key: format!("callback:{customer_id}:{call_id}"),
    }
}

/// Where a task stands when its outcome arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskProgress {
    pub kind: CareTaskKind,
    pub need: Option<Need>,
    /// Attempts made, this one included (1 after the first call).
    pub attempt: u32,
    pub max_attempts: u32,
    pub retry_spacing: Duration,
}

/// What happens after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again at `at`.
    Retry { at: DateTime<Utc> },
    /// The task is finished; a periodic one comes back at
    /// `next_periodic_due`.
    Done {
        next_periodic_due: Option<DateTime<Utc>>,
    },
    /// The customer opted out: set do-not-call, plan nothing more.
    OptOut,
}

/// The next step after a care contact's outcome. No answer and busy retry
/// with the task's spacing until its attempts are used up; reached and
/// refused finish the task. A finished periodic task (need care, check-in)
/// comes back after the policy's cadence from now. An unspecified outcome
/// is treated like no answer, so a task is never lost to a missing field.
pub fn after_outcome(
    policy: &CarePolicy,
    task: &TaskProgress,
    outcome: CareOutcome,
    now: DateTime<Utc>,
) -> NextStep {
    let done = || NextStep::Done {
        next_periodic_due: next_periodic_due(policy, task, now),
    };
    match outcome {
        CareOutcome::OptedOut => NextStep::OptOut,
        CareOutcome::Reached | CareOutcome::Refused => done(),
        CareOutcome::NoAnswer | CareOutcome::Busy | CareOutcome::Unspecified => {
            if task.attempt < task.max_attempts {
                NextStep::Retry {
                    at: now + task.retry_spacing.max(Duration::minutes(1)),
                }
            } else {
                done()
            }
        }
    }
}

fn next_periodic_due(
    policy: &CarePolicy,
    task: &TaskProgress,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match task.kind {
        CareTaskKind::NeedCare => {
            let need = policy.needs.get(task.need?)?;
            Some(now + days(need.cadence_days))
        }
        CareTaskKind::CheckIn => Some(now + days(policy.check_in.after_days_of_silence)),
        _ => None,
    }
}

/// What the periodic contact of a need is, for reasons.
fn care_word(need: NeedName) -> &'static str {
    match need {
        NeedName::Recognition => "care call",
        NeedName::Soothing => "follow-up",
        NeedName::Compensation => "invitation call",
        NeedName::ImprovementMeasures => "improvement report",
        NeedName::ConcretePlan => "plan review",
        NeedName::JustTalk => "chat",
    }
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

fn minutes(n: u32) -> Duration {
    Duration::minutes(i64::from(n))
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rapport_proto::{ContactRecord, NeedWeight, Preferences};

    fn policy() -> CarePolicy {
        CarePolicy::parse(crate::policy::DEFAULT_POLICY).expect("default policy")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 20, 2, 0, 0).unwrap()
    }

    fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: 0,
        })
    }

    fn view(needs: &[(Need, f64)]) -> ProfileView {
        ProfileView {
            customer: Some(Customer {
                customer_id: "c-1".into(),
                assets: 8_000_000,
                segment: "private-banking".into(),
                declared_needs: needs
                    .iter()
                    .map(|(n, w)| NeedWeight {
                        need: *n as i32,
                        weight: *w,
                    })
                    .collect(),
                preferences: Some(Preferences {
                    preferred_agent_id: "agent-7".into(),
                    ..Preferences::default()
                }),
                created_at: ts(now() - Duration::days(400)),
                ..Customer::default()
            }),
            summary: Some(HistorySummary {
                last_contact_at: ts(now() - Duration::days(3)),
                ..HistorySummary::default()
            }),
        }
    }

    fn summary(v: &mut ProfileView) -> &mut HistorySummary {
        v.summary.as_mut().expect("summary")
    }

    fn by_key<'t>(tasks: &'t [PlannedTask], key: &str) -> &'t PlannedTask {
        tasks
            .iter()
            .find(|t| t.key == key)
            .unwrap_or_else(|| panic!("no task {key} in {tasks:#?}"))
    }

    #[test]
    fn each_need_follows_its_cadence() {
        let p = policy();
        let all = [
            (Need::Recognition, 30),
            (Need::Soothing, 14),
            (Need::Compensation, 45),
            (Need::ImprovementMeasures, 60),
            (Need::ConcretePlan, 21),
            (Need::JustTalk, 30),
        ];
        let mut v = view(&all.map(|(n, _)| (n, 0.5)));
        let last = now() - Duration::days(10);
        summary(&mut v).last_outbound_at = ts(last);
        let tasks = plan(&p, &v, now());
        for (need, cadence) in all {
            let name = NeedName::from_proto(need).unwrap().as_str();
            let t = by_key(&tasks, &format!("need:c-1:{name}"));
            assert_eq!(t.kind, CareTaskKind::NeedCare);
            assert_eq!(t.need, Some(need));
            // Cadences of 10 days or less are overdue: due now.
            let expect = (last + Duration::days(cadence)).max(now());
            assert_eq!(t.due_at, expect, "{name}");
            assert_eq!(t.preferred_agent_id, "agent-7");
            assert_eq!(t.skill, "care");
            assert!(
                t.reason.contains(&format!("every {cadence} days")),
                "{}",
                t.reason
            );
        }
    }

    #[test]
    fn reasons_read_like_sentences() {
        let p = policy();
        let mut v = view(&[(Need::Soothing, 0.8)]);
        summary(&mut v).last_outbound_at = ts(Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap());
        let tasks = plan(&p, &v, now());
        let t = by_key(&tasks, "need:c-1:soothing");
        assert_eq!(
            t.reason,
            "soothing need (weight 0.8): follow-up every 14 days; last care call 2026-10-01"
        );
        assert_eq!(
            t.due_at,
            Utc.with_ymd_and_hms(2026, 10, 15, 9, 0, 0)
                .unwrap()
                .max(now())
        );
    }

    #[test]
    fn without_outbound_history_the_cadence_counts_from_creation() {
        let p = policy();
        let mut v = view(&[(Need::Recognition, 1.0)]);
        v.customer.as_mut().unwrap().created_at = ts(now() - Duration::days(5));
        let t = plan(&p, &v, now())
            .into_iter()
            .find(|t| t.kind == CareTaskKind::NeedCare)
            .unwrap();
        assert_eq!(t.due_at, now() + Duration::days(25));
        assert!(t.reason.contains("no care call yet"), "{}", t.reason);
    }

    #[test]
    fn zero_weight_and_unspecified_needs_plan_nothing() {
        let p = policy();
        let v = view(&[(Need::Recognition, 0.0), (Need::Unspecified, 1.0)]);
        assert!(
            plan(&p, &v, now())
                .iter()
                .all(|t| t.kind != CareTaskKind::NeedCare)
        );
        assert!(plan(&p, &ProfileView::default(), now()).is_empty());
    }

    #[test]
    fn planning_is_idempotent() {
        let p = policy();
        let v = view(&[(Need::Recognition, 0.4), (Need::JustTalk, 0.9)]);
        assert_eq!(plan(&p, &v, now()), plan(&p, &v, now()));
    }

    #[test]
    fn check_in_after_silence() {
        let p = policy();
        let mut v = view(&[]);
        summary(&mut v).last_contact_at = ts(now() - Duration::days(100));
        let tasks = plan(&p, &v, now());
        let t = by_key(&tasks, "checkin:c-1");
        assert_eq!(t.due_at, now());
        assert!(t.reason.contains("90 days of silence"), "{}", t.reason);
        // Not silent yet: planned for when it will be.
        summary(&mut v).last_contact_at = ts(now() - Duration::days(30));
        let t = by_key(&plan(&p, &v, now()), "checkin:c-1").clone();
        assert_eq!(t.due_at, now() + Duration::days(60));
    }

    #[test]
    fn soothing_follow_up_after_a_resolved_complaint() {
        let p = policy();
        let mut v = view(&[]);
        let complaint = now() - Duration::hours(20);
        summary(&mut v).last_complaint_at = ts(complaint);
        summary(&mut v).last_complaint_resolved = true;
        let tasks = plan(&p, &v, now());
        let key = format!("soothe:c-1:{}", complaint.timestamp());
        let t = by_key(&tasks, &key);
        assert_eq!(t.due_at, now());
        assert_eq!(t.window, Some((complaint, complaint + Duration::days(2))));
        assert_eq!(t.need, Some(Need::Soothing));
        assert_eq!(t.priority, 80);
        // Unresolved, too late, or already followed up: none.
        summary(&mut v).last_complaint_resolved = false;
        assert!(plan(&p, &v, now()).iter().all(|t| t.key != key));
        summary(&mut v).last_complaint_resolved = true;
        assert!(
            plan(&p, &v, now() + Duration::days(2))
                .iter()
                .all(|t| t.key != key)
        );
        summary(&mut v).last_outbound_at = ts(now() - Duration::hours(1));
        assert!(plan(&p, &v, now()).iter().all(|t| t.key != key));
    }

    #[test]
    fn the_dedicated_manager_comes_first_and_visits_are_followed_up() {
        let p = policy();
        let mut v = view(&[(Need::Recognition, 1.0)]);
        v.customer
            .as_mut()
            .unwrap()
            .preferences
            .as_mut()
            .unwrap()
            .dedicated_field_manager_id = "fm-1".into();
        let visit = now() - Duration::days(1);
        summary(&mut v).recent_contacts = vec![ContactRecord {
            channel: Channel::FieldVisit as i32,
            direction: Direction::Outbound as i32,
            started_at: ts(visit),
            agent_id: "fm-2".into(),
            ..ContactRecord::default()
        }];
        let tasks = plan(&p, &v, now());
        assert!(
            tasks
                .iter()
                .filter(|t| t.kind != CareTaskKind::VisitFollowUp)
                .all(|t| t.preferred_agent_id == "fm-1")
        );
        let t = by_key(&tasks, &format!("visit:c-1:{}", visit.timestamp()));
        assert_eq!(t.due_at, visit + Duration::days(3));
        assert_eq!(t.preferred_agent_id, "fm-2");
    }

    #[test]
    fn invitations_respect_eligibility_and_the_compensation_guard() {
        let mut p = policy();
        // Put the voucher on the recognition need for this test.
        p.needs.recognition.invitations.push("fee-voucher".into());
        let ids = |tasks: &[PlannedTask], need: &str| -> Vec<String> {
            by_key(tasks, &format!("need:c-1:{need}"))
                .invitations
                .iter()
                .map(|i| i.activity_id.clone())
                .collect()
        };
        let v = view(&[(Need::Recognition, 1.0)]);
        assert_eq!(
            ids(&plan(&p, &v, now()), "recognition"),
            ["vip-salon", "product-preview", "fee-voucher"]
        );
        // A bargain hunter: no voucher, whatever the need lists.
        let mut hunter = v.clone();
        summary(&mut hunter).compensation_asked_90d = 3;
        assert_eq!(
            ids(&plan(&p, &hunter, now()), "recognition"),
            ["vip-salon", "product-preview"]
        );
        // So is a customer with a declared compensation need.
        let seeker = view(&[(Need::Recognition, 1.0), (Need::Compensation, 0.3)]);
        let tasks = plan(&p, &seeker, now());
        assert!(!ids(&tasks, "recognition").contains(&"fee-voucher".to_owned()));
        assert!(
            by_key(&tasks, "need:c-1:compensation")
                .invitations
                .iter()
                .all(|i| !p.activity(&i.activity_id).unwrap().kind.is_compensation())
        );
        // Too few assets for the salon.
        let mut small = v.clone();
        small.customer.as_mut().unwrap().assets = 10;
        assert!(!ids(&plan(&p, &small, now()), "recognition").contains(&"vip-salon".to_owned()));
    }

    #[test]
    fn outcomes() {
        let p = policy();
        let task = TaskProgress {
            kind: CareTaskKind::NeedCare,
            need: Some(Need::Soothing),
            attempt: 1,
            max_attempts: 3,
            retry_spacing: Duration::minutes(180),
        };
        let at = now();
        assert_eq!(
            after_outcome(&p, &task, CareOutcome::NoAnswer, at),
            NextStep::Retry {
                at: at + Duration::minutes(180)
            }
        );
        assert_eq!(
            after_outcome(&p, &task, CareOutcome::Busy, at),
            NextStep::Retry {
                at: at + Duration::minutes(180)
            }
        );
        let last = TaskProgress { attempt: 3, ..task };
        let done = NextStep::Done {
            next_periodic_due: Some(at + Duration::days(14)),
        };
        assert_eq!(after_outcome(&p, &last, CareOutcome::NoAnswer, at), done);
        assert_eq!(after_outcome(&p, &task, CareOutcome::Reached, at), done);
        assert_eq!(after_outcome(&p, &task, CareOutcome::Refused, at), done);
        assert_eq!(
            after_outcome(&p, &task, CareOutcome::OptedOut, at),
            NextStep::OptOut
        );
        let callback = TaskProgress {
            kind: CareTaskKind::Callback,
            need: None,
            ..task
        };
        assert_eq!(
            after_outcome(&p, &callback, CareOutcome::Reached, at),
            NextStep::Done {
                next_periodic_due: None
            }
        );
        let check_in = TaskProgress {
            kind: CareTaskKind::CheckIn,
            need: None,
            ..task
        };
        assert_eq!(
            after_outcome(&p, &check_in, CareOutcome::Reached, at),
            NextStep::Done {
                next_periodic_due: Some(at + Duration::days(90))
            }
        );
    }

    #[test]
    fn callbacks_use_the_callers_window() {
        let p = policy();
        let start = now() + Duration::minutes(30);
        let t = callback_task(
            &p,
            "c-1",
            "call-9",
            (start, start + Duration::hours(1)),
            0,
            "a-1",
            now(),
        );
        assert_eq!(t.key, "callback:c-1:call-9");
        assert_eq!(t.due_at, start);
        assert_eq!(t.priority, 90);
        assert_eq!(t.kind, CareTaskKind::Callback);
    }
}
