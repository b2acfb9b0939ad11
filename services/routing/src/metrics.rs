//! Domain metrics of routing, through the `metrics` facade (the server kit
//! installs the Prometheus recorder; without one these are no-ops).

use crate::state::Stats;

/// One routing decision by outcome: assigned, queued, callback, degraded,
/// fallback (or no_agent / existing for outbound and retries).
pub(crate) fn decision(outcome: &'static str) {
    metrics::counter!("rapport_routing_decisions_total", "outcome" => outcome).increment(1);
}

/// Registers the unlabelled families at zero, so dashboards and alerts see
/// the series from the start rather than after the first event.
pub(crate) fn register() {
    for name in [
        "rapport_routing_offer_expiries_total",
        "rapport_routing_callbacks_offered_total",
        "rapport_routing_callbacks_accepted_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    agent_gauges(&std::collections::HashMap::new());
}

pub(crate) fn offer_expiries(n: u64) {
    if n > 0 {
        metrics::counter!("rapport_routing_offer_expiries_total").increment(n);
    }
}

pub(crate) fn callback_offered() {
    metrics::counter!("rapport_routing_callbacks_offered_total").increment(1);
}

pub(crate) fn callback_accepted() {
    metrics::counter!("rapport_routing_callbacks_accepted_total").increment(1);
}

/// One attempt to hand an accepted callback to the outreach scheduler, by
/// result: scheduled, retry (outreach unreachable) or refused.
pub(crate) fn callback_handoff(result: &'static str) {
    metrics::counter!("rapport_routing_callback_handoffs_total", "result" => result).increment(1);
}

/// Queue length and oldest wait per requirement group (`<channel>:<group>`).
pub(crate) fn queue_gauges(stats: &Stats, now_ms: i64) {
    for g in &stats.groups {
        let group = format!("{}:{}", g.channel, g.group);
        metrics::gauge!("rapport_routing_queue_length", "group" => group.clone())
            .set(g.waiting as f64);
        let oldest = if g.waiting > 0 {
            (now_ms - g.oldest_arrival_ms).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        metrics::gauge!("rapport_routing_queue_oldest_wait_seconds", "group" => group).set(oldest);
    }
}

/// Agents by presence (logged_out, not_ready, ready, wrap_up) and
/// `holding` (agents holding at least one contact).
pub(crate) fn agent_gauges(counts: &std::collections::HashMap<String, i64>) {
    for status in ["logged_out", "not_ready", "ready", "wrap_up", "holding"] {
        let n = counts.get(status).copied().unwrap_or(0).max(0);
        metrics::gauge!("rapport_routing_agents", "status" => status).set(n as f64);
    }
}
