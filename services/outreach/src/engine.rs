//! The dispatch loop every replica runs: claim due tasks in batches under
//! leases, check each against the customer's consent, windows and the
//! center's rules, reserve an agent through routing while inbound leaves
//! room (blending), and publish the dial request — exactly once, because
//! the publish is fenced by the claim's token.
//!
//! A task that fails a check goes back to the index at the next allowed
//! moment with the reason; nothing is dropped. A replica that dies or
//! stalls loses its leases, and whichever replica reaps them next puts the
//! tasks back; its late dispatches are refused by the fence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rapport_proto as pb;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::compliance::{self, CustomerFacts, Verdict};
use crate::deps::Deps;
use crate::metrics;
use crate::plan::NextStep;
use crate::policy::{CarePolicy, PolicyHandle};
use crate::store::{Claimed, Dispatch, Dispatched, OutcomeAction, Store, Stored};

/// How long a task waits before another try when a dependency failed or
/// nobody could take the call.
const RETRY_SOON: chrono::Duration = chrono::Duration::seconds(30);
/// How long a task waits when the customer is in an inbound contact.
const CUSTOMER_BUSY_WAIT: chrono::Duration = chrono::Duration::minutes(5);
/// Leases reaped per script call.
const REAP_BATCH: usize = 500;
/// Overdue dispatches handled per round.
const OVERDUE_BATCH: usize = 100;

/// Everything the loop needs. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) deps: Deps,
    pub(crate) policy: PolicyHandle,
    pub(crate) clock: Clock,
    /// This replica's name in leases.
    pub(crate) owner: String,
    pub(crate) default_center: String,
    pub(crate) interval: Duration,
    pub(crate) concurrency: usize,
    /// Tasks this replica holds, with their fencing tokens, for renewal.
    held: Arc<Mutex<HashMap<String, u64>>>,
    blend: Arc<Mutex<Option<(Instant, u32)>>>,
}

/// What happened to one claimed task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Dispatched,
    Deferred(String),
    /// The claim was lost (lease expired, task cancelled or re-claimed).
    Lost(String),
    Cancelled(String),
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        deps: Deps,
        policy: PolicyHandle,
        clock: Clock,
        owner: String,
        default_center: String,
        interval: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            store,
            deps,
            policy,
            clock,
            owner,
            default_center,
            interval,
            concurrency: concurrency.max(1),
            held: Arc::default(),
            blend: Arc::default(),
        }
    }

    fn lease(policy: &CarePolicy) -> Duration {
        Duration::from_secs(u64::from(policy.dispatch.lease_seconds.max(1)))
    }

    /// Runs the claim loop and lease renewal until `stop` is cancelled;
    /// tasks in flight finish (or their leases lapse) before it returns.
    pub async fn run(self, stop: CancellationToken) {
        let renewing = tokio::spawn(self.clone().renew_loop(stop.clone()));
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if stop.is_cancelled() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let claimed = match self.claim_round(permits.available_permits()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "claiming care tasks failed; retrying");
                    Vec::new()
                }
            };
            let full = !claimed.is_empty() && permits.available_permits() <= claimed.len();
            let got = claimed.len();
            for task in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let engine = self.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    let _ = engine.handle(task).await;
                });
            }
            // A full batch means more may be due: claim again at once, once
            // a worker frees up. Otherwise wait for the next tick.
            if got == 0 || !full {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.interval) => {}
                }
            } else {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = permits.acquire() => {}
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        renewing.abort();
    }

    /// One round: reap expired leases, ask the blending gate how many calls
    /// may start, claim that many (at most `room`).
    pub async fn claim_round(&self, room: usize) -> anyhow::Result<Vec<Claimed>> {
        let policy = self.policy.current();
        let now = self.clock.now_ms();
        let reaped = self.store.reap(REAP_BATCH, now).await?;
        metrics::lease_expiries(reaped);
        self.expire_outcomes(&policy).await?;
        let capacity = self.capacity(&policy).await;
        let batch = room
            .min(policy.dispatch.claim_batch.max(1) as usize)
            .min(capacity);
        if batch == 0 {
            return Ok(Vec::new());
        }
        let claimed = self
            .store
            .claim(&self.owner, batch, Self::lease(&policy), now)
            .await?;
        if !claimed.is_empty() {
            metrics::claimed(claimed.len());
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for c in &claimed {
                held.insert(c.id.clone(), c.fence);
            }
        }
        Ok(claimed)
    }

    /// How many care calls may start now. Without routing the dialer paces
    /// itself; with routing, only agents ready beyond the inbound reserve
    /// count, and nothing starts while inbound contacts wait. The answer is
    /// cached for a second so a busy loop does not hammer routing.
    async fn capacity(&self, policy: &CarePolicy) -> usize {
        if !self.deps.has_routing() {
            return usize::MAX;
        }
        let cached = *self.blend.lock().unwrap_or_else(|e| e.into_inner());
        let ready = match cached {
            Some((at, ready)) if at.elapsed() < Duration::from_secs(1) => ready,
            _ => {
                let ready = match self.deps.queue_stats(&self.default_center).await {
                    Ok(Some(stats)) => {
                        let waiting: u32 = stats.groups.iter().map(|g| g.waiting).sum();
                        if waiting > 0 { 0 } else { stats.ready_agents }
                    }
                    Ok(None) => u32::MAX,
                    Err(s) => {
                        tracing::warn!(error = %s, "routing queue stats unavailable; holding outbound");
                        0
                    }
                };
                *self.blend.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), ready));
                ready
            }
        };
        if !policy.blending.may_dispatch(ready) {
            return 0;
        }
        ready.saturating_sub(policy.blending.inbound_reserve_agents) as usize
    }

    /// Dispatched calls whose outcome never came (the dialer lost them
    /// after acknowledging) count as not answered: each is retried with
    /// its spacing up to its attempts, like a `NO_ANSWER` outcome, so a
    /// customer's care never stops silently. Any replica may do this; the
    /// outcome script's fence check makes it happen once.
    pub async fn expire_outcomes(&self, policy: &CarePolicy) -> anyhow::Result<u64> {
        let now = self.clock.now();
        let timeout = i64::from(policy.dispatch.outcome_timeout_minutes.max(1)) * 60_000;
        let ids = self
            .store
            .overdue(now.timestamp_millis() - timeout, OVERDUE_BATCH)
            .await?;
        let mut expired = 0;
        for id in ids {
            let Some(stored) = self.store.task(&id).await? else {
                continue;
            };
            let (action, task) = after_outcome(policy, &stored, pb::CareOutcome::NoAnswer, now);
            if self
                .store
                .outcome(&id, stored.fence, action, &task, now.timestamp_millis())
                .await?
                .is_ok()
            {
                tracing::warn!(task_id = %id, "no outcome reported for a dispatched care call; counted as not answered");
                expired += 1;
            }
        }
        metrics::outcome_timeouts(expired);
        Ok(expired)
    }

    async fn renew_loop(self, stop: CancellationToken) {
        loop {
            let lease = Self::lease(&self.policy.current());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(lease / 3) => {}
            }
            let held: Vec<(String, u64)> = self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            match self.store.renew(&held, lease, self.clock.now_ms()).await {
                Ok(lost) => {
                    if !lost.is_empty() {
                        tracing::warn!(count = lost.len(), "leases lost before renewal");
                        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
                        for id in lost {
                            map.remove(&id);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
            }
        }
    }

    fn release(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Checks, reserves and dispatches one claimed task.
    pub async fn handle(&self, task: Claimed) -> anyhow::Result<Handled> {
        let span = tracing::info_span!("care_task", task_id = %task.id, fence = task.fence);
        let id = task.id.clone();
        let result = self.handle_inner(task).instrument(span).await;
        self.release(&id);
        match &result {
            Ok(Handled::Deferred(reason)) => metrics::skipped(reason),
            Ok(Handled::Lost(reason)) => metrics::fenced(reason),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), task_id = %id, "care task failed; its lease will return it")
            }
        }
        result
    }

    async fn defer(
        &self,
        task: &Claimed,
        at: DateTime<Utc>,
        reason: &str,
    ) -> anyhow::Result<Handled> {
        let now = self.clock.now_ms();
        let at = at.timestamp_millis().max(now);
        if self
            .store
            .reschedule(&task.id, task.fence, at, reason, now)
            .await?
        {
            tracing::debug!(reason, due_ms = at, "care task deferred");
            Ok(Handled::Deferred(reason.to_owned()))
        } else {
            Ok(Handled::Lost("stale".into()))
        }
    }

    async fn handle_inner(&self, task: Claimed) -> anyhow::Result<Handled> {
        let policy = self.policy.current();
        let now = self.clock.now();
        let customer_id = task.task.customer_id.clone();

        // The profile is read fresh for every attempt: consent and
        // do-not-call must be current at the moment of the call.
        let view = if customer_id.is_empty() {
            None
        } else {
            match self.deps.profile(&customer_id).await {
                Ok(Some(view)) => Some(view),
                Ok(None) => {
                    let now_ms = self.clock.now_ms();
                    self.store
                        .cancel(&task.id, "customer unknown to profile", now_ms)
                        .await?
                        .ok();
                    return Ok(Handled::Cancelled("customer_unknown".into()));
                }
                Err(s) => {
                    tracing::warn!(error = %s, "profile unavailable; deferring the care task");
                    return self
                        .defer(&task, now + RETRY_SOON, "profile_unavailable")
                        .await;
                }
            }
        };
        let facts = match &view {
            Some(v) => CustomerFacts::from_view(v, &policy),
            // A caller without a profile asked for the callback on the
            // call: that is consent for it; their zone is the one the
            // request named, else the policy's default.
            None => CustomerFacts {
                time_zone: task.meta.time_zone.parse().ok(),
                care_calls_consent: true,
                ..CustomerFacts::default()
            },
        };
        let check = compliance::TaskFacts {
            kind: pb::CareTaskKind::try_from(task.task.kind).unwrap_or_default(),
            window: task.task.window.as_ref().and_then(|w| {
                Some((
                    compliance::utc(w.start.as_ref())?,
                    compliance::utc(w.end.as_ref())?,
                ))
            }),
        };
        if let Verdict::Reschedule { at, reason } = compliance::check(&policy, &check, &facts, now)
        {
            return self.defer(&task, at, reason.as_str()).await;
        }

        let phone = if task.meta.phone.is_empty() {
            view.as_ref()
                .and_then(|v| v.customer.as_ref())
                .and_then(|c| c.phones.first())
                .map(|p| p.number.clone())
                .unwrap_or_default()
        } else {
            task.meta.phone.clone()
        };
        if phone.is_empty() {
            return self
                .defer(&task, now + chrono::Duration::days(1), "no_phone")
                .await;
        }

        let idem = task.idempotency_key();
        let center = if task.meta.center.is_empty() {
            self.default_center.clone()
        } else {
            task.meta.center.clone()
        };
        let (agent_id, agent_name) = match self
            .deps
            .route_outbound(pb::RouteOutboundRequest {
                center_id: center,
                task_id: idem.clone(),
                customer_id: customer_id.clone(),
                skill: task.meta.skill.clone(),
                channel: task.task.channel,
                preferred_agent_id: task.task.preferred_agent_id.clone(),
            })
            .await
        {
            Ok(None) => (String::new(), String::new()),
            Ok(Some(decision)) => match pb::RouteOutcome::try_from(decision.outcome) {
                Ok(pb::RouteOutcome::Assigned) => {
                    let agent = decision.agent.unwrap_or_default();
                    (agent.agent_id, agent.name)
                }
                Ok(pb::RouteOutcome::CustomerBusy) => {
                    return self
                        .defer(&task, now + CUSTOMER_BUSY_WAIT, "in_inbound_contact")
                        .await;
                }
                _ => return self.defer(&task, now + RETRY_SOON, "no_agent").await,
            },
            Err(s) => {
                tracing::warn!(error = %s, "routing could not reserve an agent");
                return self
                    .defer(&task, now + RETRY_SOON, "routing_unavailable")
                    .await;
            }
        };

        let mut view_task = task.task.clone();
        view_task.task_id.clone_from(&task.id);
        view_task.state = pb::CareTaskState::Dispatched as i32;
        view_task.attempt = task.attempt;
        view_task.due_at = Some(crate::store::timestamp(task.due_ms));
        let request = pb::DialRequest {
            idempotency_key: idem,
            task: Some(view_task),
            fencing_token: task.fence,
            customer_phone: phone,
            agent_id: agent_id.clone(),
            agent_name,
            delivery_id: String::new(),
        };
        let cap = policy.compliance.frequency_cap;
        let window =
            Duration::from_secs(u64::from(policy.compliance.frequency_window_days) * 86_400);
        let result = self
            .store
            .dispatch(
                &[Dispatch {
                    id: task.id.clone(),
                    fence: task.fence,
                    capped: task.meta.capped,
                    request,
                    agent_id,
                }],
                cap,
                window,
                self.clock.now_ms(),
            )
            .await?;
        match result.into_iter().next() {
            Some(Dispatched::Published(entry)) => {
                metrics::dispatched(kind_label(task.task.kind));
                tracing::info!(delivery = %entry, "care call dispatched");
                Ok(Handled::Dispatched)
            }
            Some(Dispatched::Capped) => {
                self.defer(&task, now + chrono::Duration::days(1), "frequency_cap")
                    .await
            }
            Some(Dispatched::Expired) => Ok(Handled::Lost("expired".into())),
            Some(Dispatched::Stale) | None => Ok(Handled::Lost("stale".into())),
        }
    }
}

/// What an outcome does to a dispatched task (retry, re-arm the next
/// periodic cycle, or finish), and the task as it is stored afterwards.
pub(crate) fn after_outcome(
    policy: &CarePolicy,
    stored: &Stored,
    outcome: pb::CareOutcome,
    now: DateTime<Utc>,
) -> (OutcomeAction, pb::CareTask) {
    let progress = crate::plan::TaskProgress {
        kind: pb::CareTaskKind::try_from(stored.task.kind).unwrap_or_default(),
        need: pb::Need::try_from(stored.task.need)
            .ok()
            .filter(|n| *n != pb::Need::Unspecified),
        attempt: stored.attempt + 1,
        max_attempts: stored.meta.max_attempts,
        retry_spacing: chrono::Duration::milliseconds(stored.meta.retry_spacing_ms),
    };
    let action = match crate::plan::after_outcome(policy, &progress, outcome, now) {
        NextStep::Retry { at } => OutcomeAction::Retry {
            due_ms: at.timestamp_millis(),
        },
        NextStep::Done {
            next_periodic_due: Some(next),
        } if stored.periodic => OutcomeAction::Rearm {
            due_ms: next.timestamp_millis(),
        },
        NextStep::Done { .. } | NextStep::OptOut => OutcomeAction::Done,
    };
    let mut task = stored.task.clone();
    if let OutcomeAction::Rearm { due_ms } | OutcomeAction::Retry { due_ms } = action {
        task.due_at = Some(crate::store::timestamp(due_ms));
    }
    (action, task)
}

/// A stable metric label for a task kind.
pub fn kind_label(kind: i32) -> &'static str {
    match pb::CareTaskKind::try_from(kind) {
        Ok(pb::CareTaskKind::NeedCare) => "need_care",
        Ok(pb::CareTaskKind::CheckIn) => "check_in",
        Ok(pb::CareTaskKind::SoothingFollowUp) => "soothing_follow_up",
        Ok(pb::CareTaskKind::Callback) => "callback",
        Ok(pb::CareTaskKind::VisitFollowUp) => "visit_follow_up",
        Ok(pb::CareTaskKind::Manual) => "manual",
        _ => "unspecified",
    }
}
