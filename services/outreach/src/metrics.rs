//! The scheduler's domain metrics: tasks due, claimed, dispatched, skipped
//! by reason, lease expiries and redeliveries (the `rapport_outreach_*` families in
//! ARCHITECTURE.md).

use crate::store::Counts;

/// Registers every unlabelled family at zero, so a dashboard or alert sees
/// the series (and its rate) from the start, not only after the first
/// event of each kind.
pub(crate) fn register() {
    for name in [
        "rapport_outreach_tasks_claimed_total",
        "rapport_outreach_lease_expiries_total",
        "rapport_outreach_dial_redeliveries_total",
        "rapport_outreach_dial_deliveries_total",
        "rapport_outreach_dial_acks_total",
        "rapport_outreach_feed_changes_total",
        "rapport_outreach_rebuild_customers_total",
        "rapport_outreach_outcome_timeouts_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        "rapport_outreach_tasks_due",
        "rapport_outreach_tasks_pending",
        "rapport_outreach_tasks_claimed",
        "rapport_outreach_dial_unacknowledged",
    ] {
        metrics::gauge!(name).set(0.0);
    }
}

pub(crate) fn claimed(n: usize) {
    metrics::counter!("rapport_outreach_tasks_claimed_total").increment(n as u64);
}

pub(crate) fn dispatched(kind: &str) {
    metrics::counter!("rapport_outreach_tasks_dispatched_total", "kind" => kind.to_owned())
        .increment(1);
}

/// A check deferred a task; `reason` is a stable label.
pub(crate) fn skipped(reason: &str) {
    metrics::counter!("rapport_outreach_tasks_skipped_total", "reason" => reason.to_owned())
        .increment(1);
}

/// A dispatch refused because the claim was no longer this replica's.
pub(crate) fn fenced(reason: &str) {
    metrics::counter!("rapport_outreach_dispatch_refused_total", "reason" => reason.to_owned())
        .increment(1);
}

pub(crate) fn lease_expiries(n: u64) {
    if n > 0 {
        metrics::counter!("rapport_outreach_lease_expiries_total").increment(n);
    }
}

pub(crate) fn redeliveries(n: usize) {
    if n > 0 {
        metrics::counter!("rapport_outreach_dial_redeliveries_total").increment(n as u64);
    }
}

pub(crate) fn delivered(n: usize) {
    if n > 0 {
        metrics::counter!("rapport_outreach_dial_deliveries_total").increment(n as u64);
    }
}

pub(crate) fn acked(n: u64) {
    if n > 0 {
        metrics::counter!("rapport_outreach_dial_acks_total").increment(n);
    }
}

pub(crate) fn outcome_timeouts(n: u64) {
    if n > 0 {
        metrics::counter!("rapport_outreach_outcome_timeouts_total").increment(n);
    }
}

pub(crate) fn outcome(outcome: &str) {
    metrics::counter!("rapport_outreach_outcomes_total", "outcome" => outcome.to_owned())
        .increment(1);
}

pub(crate) fn gauges(c: &Counts) {
    metrics::gauge!("rapport_outreach_tasks_due").set(c.due_now as f64);
    metrics::gauge!("rapport_outreach_tasks_pending").set(c.pending as f64);
    metrics::gauge!("rapport_outreach_tasks_claimed").set(c.claimed as f64);
    metrics::gauge!("rapport_outreach_dial_unacknowledged").set(c.unacknowledged as f64);
}

pub(crate) fn rebuild(customers: u64, tasks: u64, seconds: f64) {
    metrics::counter!("rapport_outreach_rebuild_customers_total").increment(customers);
    metrics::gauge!("rapport_outreach_rebuild_last_tasks").set(tasks as f64);
    metrics::gauge!("rapport_outreach_rebuild_last_seconds").set(seconds);
}

pub(crate) fn feed_changes(n: usize) {
    if n > 0 {
        metrics::counter!("rapport_outreach_feed_changes_total").increment(n as u64);
    }
}
