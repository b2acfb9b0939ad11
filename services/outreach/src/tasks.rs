//! Turns planned and requested care contacts into stored tasks: the
//! `CareTask` callers see plus what the scheduler keeps beside it.

use rapport_proto as pb;

use crate::plan::PlannedTask;
use crate::store::{Meta, NewTask, Source, timestamp};

fn ts_ms(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

/// Milliseconds since the Unix epoch of a protobuf timestamp.
pub fn millis(ts: Option<&prost_types::Timestamp>) -> Option<i64> {
    ts.map(ts_ms)
}

/// Whether a kind recurs (its finished task is re-armed for the next
/// cycle) rather than happening once.
pub fn periodic(kind: pb::CareTaskKind) -> bool {
    matches!(kind, pb::CareTaskKind::NeedCare | pb::CareTaskKind::CheckIn)
}

/// Whether the frequency cap applies. Callbacks were asked for by the
/// customer, so they are not unsolicited care contacts.
pub fn capped(kind: pb::CareTaskKind) -> bool {
    !matches!(kind, pb::CareTaskKind::Callback)
}

/// A policy-planned task for `customer_id`, stored under its plan key.
pub fn from_plan(customer_id: &str, p: &PlannedTask, center: &str) -> NewTask {
    let window = p.window.map(|(start, end)| pb::TimeRange {
        start: Some(timestamp(start.timestamp_millis())),
        end: Some(timestamp(end.timestamp_millis())),
    });
    let task = pb::CareTask {
        task_id: p.key.clone(),
        customer_id: customer_id.to_owned(),
        kind: p.kind as i32,
        need: p.need.map(|n| n as i32).unwrap_or_default(),
        state: pb::CareTaskState::Pending as i32,
        due_at: Some(timestamp(p.due_at.timestamp_millis())),
        window,
        priority: p.priority,
        attempt: 0,
        channel: p.channel as i32,
        theme: p.theme.clone(),
        talking_points: p.talking_points.clone(),
        invitations: p.invitations.clone(),
        reason: p.reason.clone(),
        preferred_agent_id: p.preferred_agent_id.clone(),
    };
    NewTask {
        due_ms: p.due_at.timestamp_millis(),
        periodic: periodic(p.kind),
        source: Source::Plan,
        meta: Meta {
            max_attempts: p.max_attempts,
            retry_spacing_ms: p.retry_spacing.num_milliseconds(),
            skill: p.skill.clone(),
            center: center.to_owned(),
            phone: String::new(),
            call_id: String::new(),
            capped: capped(p.kind),
            time_zone: String::new(),
        },
        task,
    }
}
