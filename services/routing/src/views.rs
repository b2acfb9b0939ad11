//! Building the contract's messages from live state: agent and call
//! states, offers, follow-up tasks and the screen pop.

use std::collections::HashMap;

use prost::Message as _;
use rapport_proto as pb;

use crate::groups::Group;
use crate::state::{AgentSnapshot, CallSnapshot, Center, Held, Status};

pub(crate) fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

pub(crate) fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

pub(crate) fn status_to_pb(status: Status) -> pb::AgentStatus {
    match status {
        Status::LoggedOut => pb::AgentStatus::LoggedOut,
        Status::NotReady => pb::AgentStatus::NotReady,
        Status::Ready => pb::AgentStatus::Ready,
        Status::WrapUp => pb::AgentStatus::WrapUp,
        Status::Reserved => pb::AgentStatus::Reserved,
        Status::Busy => pb::AgentStatus::Busy,
    }
}

pub(crate) fn agent_ref(profile: &pb::AgentProfile) -> pb::AgentRef {
    pb::AgentRef {
        agent_id: profile.agent_id.clone(),
        name: profile.name.clone(),
        kind: profile.kind,
        phone: profile.phone.clone(),
    }
}

pub(crate) fn agent_state(
    snapshot: &AgentSnapshot,
    assigned: Option<pb::RouteDecision>,
) -> pb::AgentState {
    pb::AgentState {
        status: status_to_pb(snapshot.status()) as i32,
        call_id: snapshot.call_id().to_owned(),
        status_since: timestamp(snapshot.status_since_ms),
        profile: Some(snapshot.profile.clone()),
        assigned,
        call_ids: snapshot.held.iter().map(|h| h.call_id.clone()).collect(),
        missed_offers: snapshot.missed_offers,
        on_duty_until: timestamp(snapshot.on_duty_until_ms),
    }
}

pub(crate) fn call_status(status: &str) -> pb::CallStatus {
    match status {
        "queued" => pb::CallStatus::Queued,
        "offered" => pb::CallStatus::Offered,
        "connected" => pb::CallStatus::Connected,
        "completed" => pb::CallStatus::Completed,
        "abandoned" => pb::CallStatus::Abandoned,
        "callback" => pb::CallStatus::Callback,
        _ => pb::CallStatus::Unspecified,
    }
}

/// Widening steps as stored with a contact: `group,min,after_ms;…`.
pub(crate) fn stored_steps(encoded: &str) -> Vec<pb::WideningStep> {
    encoded
        .split(';')
        .filter_map(|entry| {
            let mut parts = entry.split(',');
            let group = parts.next()?.to_owned();
            let min_score: f64 = parts.next()?.parse().ok()?;
            let after_s = (parts.next()?.parse::<u64>().ok()? / 1000) as u32;
            Some(pb::WideningStep {
                description: format!("after {after_s} s: {group} ≥ {min_score:.1}"),
                after_s,
                group,
                min_score,
            })
        })
        .collect()
}

/// The requirements of a contact as stored, with its widening so far.
pub(crate) fn requirements(call: &CallSnapshot) -> pb::Requirements {
    let group = Group::parse(call.get("group"));
    let steps = stored_steps(call.get("steps"));
    let step = call.get_i64("step").max(0) as usize;
    pb::Requirements {
        skill: call.get("skill").to_owned(),
        min_score: call.get("min_score").parse().unwrap_or(0.0),
        pool: group.pool.clone().unwrap_or_default(),
        language: group.language().unwrap_or_default().to_owned(),
        dialect: group.dialect().unwrap_or_default().to_owned(),
        group: call.get("group").to_owned(),
        empathy_needed: call.get("empathy_need") == "1",
        de_escalation_needed: call.get("de_escalation_need") == "1",
        widening: steps.into_iter().skip(step).collect(),
        step: step as u32,
    }
}

pub(crate) fn follow_up(task: &HashMap<String, String>) -> pb::FollowUpTask {
    let get = |k: &str| task.get(k).cloned().unwrap_or_default();
    let ms = |k: &str| task.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    pb::FollowUpTask {
        task_id: get("task_id"),
        kind: get("kind"),
        customer_id: get("customer_id"),
        call_id: get("call_id"),
        agent_id: get("agent_id"),
        window: Some(pb::TimeRange {
            start: timestamp(ms("start_ms")),
            end: timestamp(ms("end_ms")),
        }),
        priority: get("priority").parse().unwrap_or(0),
        skill: get("skill"),
        ivr_selection: get("ivr_selection"),
        created_at: timestamp(ms("created_ms")),
    }
}

/// A contact's public state; `agent` is the holder's profile when known.
pub(crate) fn call_state(
    center: &Center,
    call: &CallSnapshot,
    agent: Option<pb::AgentRef>,
    callback: Option<pb::FollowUpTask>,
    now_ms: i64,
) -> pb::CallState {
    let status = call_status(call.get("status"));
    let queue_wait_ms = if status == pb::CallStatus::Queued {
        now_ms - call.get_i64("arrived_ms")
    } else {
        call.get_i64("queue_wait_ms")
    };
    let requirements = requirements(call);
    let reasons = stored_steps(call.get("steps"))
        .into_iter()
        .take(requirements.step as usize)
        .map(|s| format!("widened {}", s.description))
        .collect();
    pb::CallState {
        call_id: call.get("call_id").to_owned(),
        center_id: center.id().to_owned(),
        status: status as i32,
        agent,
        customer_id: call.get("customer_id").to_owned(),
        requirements: Some(requirements),
        arrived_at: timestamp(call.get_i64("arrived_ms")),
        queue_wait_s: (queue_wait_ms.max(0) / 1000) as u32,
        queue_position: call.queue_position.unwrap_or(0) as u32,
        ivr_selection: call.get("ivr_selection").to_owned(),
        channel: call.channel(),
        offer_id: if status == pb::CallStatus::Offered {
            call.get("offer_id").to_owned()
        } else {
            String::new()
        },
        callback,
        reasons,
    }
}

/// An offer for a held contact, with the screen pop stored at routing.
pub(crate) fn offer(call: &CallSnapshot, held: &Held, pop: Option<&[u8]>) -> pb::Offer {
    pb::Offer {
        offer_id: held.offer_id.clone(),
        call_id: held.call_id.clone(),
        expires_at: timestamp(call.get_i64("offer_expires_ms")),
        screen_pop: pop.and_then(|b| pb::ScreenPop::decode(b).ok()),
        reasons: call
            .get("reasons")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        channel: held.channel,
    }
}

/// Readable lines for the screen pop from the caller's profile.
pub(crate) fn screen_pop(
    view: Option<&pb::ProfileView>,
    c: Option<&pb::Classification>,
) -> pb::ScreenPop {
    let mut pop = pb::ScreenPop::default();
    if let Some(c) = c {
        pop.tier = c.tier;
        pop.needs = c.needs.clone();
        pop.emotion = c.emotion.clone();
        pop.moment_of_truth = c.moment_of_truth.clone();
        pop.guidance = c.guidance.clone();
    }
    let Some(view) = view else {
        return pop;
    };
    if let Some(customer) = &view.customer {
        pop.customer_id = customer.customer_id.clone();
        pop.form_of_address = customer.form_of_address.clone();
        for tag in &customer.tags {
            let kind = pb::TagKind::try_from(tag.kind).unwrap_or(pb::TagKind::Other);
            if kind == pb::TagKind::Caution {
                pop.cautions.push(tag.text.clone());
            } else {
                pop.tags.push(format!(
                    "{}: {}",
                    kind.as_str_name()
                        .trim_start_matches("TAG_KIND_")
                        .to_lowercase(),
                    tag.text
                ));
            }
        }
    }
    if let Some(summary) = &view.summary {
        for contact in &summary.recent_contacts {
            let outcome = pb::ContactOutcome::try_from(contact.outcome)
                .unwrap_or(pb::ContactOutcome::Unspecified)
                .as_str_name()
                .trim_start_matches("CONTACT_OUTCOME_")
                .to_lowercase();
            let mut line = format!(
                "{} {}: {outcome}, waited {} s",
                contact
                    .started_at
                    .as_ref()
                    .map(|t| format!("@{}", t.seconds))
                    .unwrap_or_default(),
                if contact.ivr_selection.is_empty() {
                    "contact"
                } else {
                    &contact.ivr_selection
                },
                contact.queue_wait_s
            );
            if contact.complaint {
                line.push_str(", complaint");
            }
            pop.recent_contacts.push(line.trim().to_owned());
        }
        pop.recent_campaigns = summary
            .recent_campaigns
            .iter()
            .map(|c| c.title.clone())
            .collect();
    }
    pop
}
