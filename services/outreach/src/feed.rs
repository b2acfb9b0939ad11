//! Keeps the due index derived from profiles: a full rebuild streams every
//! profile and recomputes each customer's plan; afterwards one replica (the
//! holder of the follower lock) keeps it current from profile's change
//! feed, re-planning only the customers that changed.
//!
//! Both paths write with the same idempotent per-customer upsert, so a
//! rebuild racing the feed, a replayed change or two followers during a
//! lock hand-over never plan a call twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use rapport_proto as pb;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::metrics;
use crate::store::{NewTask, UpsertMode, UpsertReport};
use crate::tasks;

/// Profiles per upsert round trip during a rebuild.
const REBUILD_BATCH: usize = 500;
/// Upsert round trips in flight during a rebuild.
const REBUILD_IN_FLIGHT: usize = 4;
/// Weeks of inbound history the forecast keeps.
pub const FORECAST_WEEKS: i64 = 8;
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
const LOCK: &str = "feed:lock";
const LOCK_TTL: Duration = Duration::from_secs(15);

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildReport {
    pub customers: u64,
    pub tasks: u64,
    pub seconds: f64,
}

/// The week bucket and hour of week (Monday 00:00 local = 0) of an
/// inbound contact, in the center's time zone.
pub fn forecast_slot(at: DateTime<Utc>, tz: chrono_tz::Tz) -> (i64, u32) {
    let local = at.with_timezone(&tz);
    let hour = local.weekday().num_days_from_monday() * 24 + local.hour();
    (at.timestamp_millis().div_euclid(WEEK_MS), hour)
}

/// The week buckets the forecast reads, newest last, ending with the week
/// before `now` (the current week is incomplete).
pub fn forecast_weeks(now: DateTime<Utc>) -> Vec<i64> {
    let this = now.timestamp_millis().div_euclid(WEEK_MS);
    (this - FORECAST_WEEKS..this).collect()
}

fn inbound_slots(
    view: &pb::ProfileView,
    tz: chrono_tz::Tz,
    since_ms: i64,
    only: Option<&str>,
) -> Vec<(i64, u32)> {
    let Some(summary) = &view.summary else {
        return Vec::new();
    };
    summary
        .recent_contacts
        .iter()
        .filter(|c| c.direction == pb::Direction::Inbound as i32)
        .filter(|c| only.is_none_or(|id| c.contact_id == id))
        .filter_map(|c| tasks::millis(c.started_at.as_ref()))
        .filter(|ms| *ms >= since_ms)
        .filter_map(DateTime::from_timestamp_millis)
        .map(|at| forecast_slot(at, tz))
        .collect()
}

impl Engine {
    /// The tasks the policy plans for a customer now.
    pub fn plan_customer(&self, view: &pb::ProfileView, now: DateTime<Utc>) -> Vec<NewTask> {
        let policy = self.policy.current();
        let customer_id = view
            .customer
            .as_ref()
            .map(|c| c.customer_id.as_str())
            .unwrap_or_default();
        crate::plan::plan(&policy, view, now)
            .iter()
            .map(|p| tasks::from_plan(customer_id, p, &self.default_center))
            .collect()
    }

    /// Re-plans one customer from their current profile (or drops their
    /// tasks when profile no longer knows them).
    pub async fn replan(&self, customer_id: &str) -> anyhow::Result<Option<pb::ProfileView>> {
        let now = self.clock.now();
        let view = self.deps.profile(customer_id).await?;
        match &view {
            Some(view) => {
                let planned = self.plan_customer(view, now);
                self.store
                    .upsert(
                        customer_id,
                        UpsertMode::Replan,
                        &planned,
                        now.timestamp_millis(),
                    )
                    .await?;
            }
            None => {
                self.store
                    .upsert(customer_id, UpsertMode::Erase, &[], now.timestamp_millis())
                    .await?;
            }
        }
        Ok(view)
    }

    /// Streams every profile from the profile service and recomputes the
    /// whole due index (and the forecast's inbound counts).
    pub async fn rebuild(&self) -> anyhow::Result<RebuildReport> {
        let started = Instant::now();
        let now = self.clock.now();
        let tz = self.policy.current().compliance.default_time_zone.0;
        let weeks = forecast_weeks(now);
        let since = weeks.first().copied().unwrap_or_default() * WEEK_MS;
        self.store.clear_inbound(&weeks).await?;
        let mut stream = self.deps.export(1000).await?;
        let mut report = RebuildReport::default();
        let mut batch: Vec<(String, UpsertMode, Vec<NewTask>)> = Vec::with_capacity(REBUILD_BATCH);
        let mut slots = Vec::new();
        let mut writes: tokio::task::JoinSet<anyhow::Result<UpsertReport>> =
            tokio::task::JoinSet::new();
        while let Some(view) = stream.message().await? {
            let Some(customer) = &view.customer else {
                continue;
            };
            let planned = self.plan_customer(&view, now);
            report.customers += 1;
            slots.extend(inbound_slots(&view, tz, since, None));
            batch.push((customer.customer_id.clone(), UpsertMode::Replan, planned));
            if batch.len() >= REBUILD_BATCH {
                while writes.len() >= REBUILD_IN_FLIGHT {
                    if let Some(done) = writes.join_next().await {
                        report.tasks += done??.created;
                    }
                }
                let store = self.store.clone();
                let items = std::mem::take(&mut batch);
                let counts = std::mem::take(&mut slots);
                let now_ms = now.timestamp_millis();
                writes.spawn(async move {
                    store.count_inbound(&counts).await?;
                    Ok(store.upsert_many(&items, now_ms).await?)
                });
            }
        }
        self.store.count_inbound(&slots).await?;
        let last = self
            .store
            .upsert_many(&batch, now.timestamp_millis())
            .await?;
        report.tasks += last.created;
        while let Some(done) = writes.join_next().await {
            report.tasks += done??.created;
        }
        report.seconds = started.elapsed().as_secs_f64();
        self.store.set("index:built", &now.to_rfc3339()).await?;
        metrics::rebuild(report.customers, report.tasks, report.seconds);
        tracing::info!(
            customers = report.customers,
            tasks_created = report.tasks,
            seconds = report.seconds,
            "due index rebuilt from profiles"
        );
        Ok(report)
    }

    /// Follows the profile change feed until `stop`: only the replica
    /// holding the follower lock follows; it first rebuilds the index when
    /// Redis has none (a new or flushed Redis).
    pub async fn follow(self, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.follow_once(&stop).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "following the profile change feed failed; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn follow_once(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        if !self.store.hold_lock(LOCK, &self.owner, LOCK_TTL).await? {
            return Ok(());
        }
        if self.store.get("index:built").await?.is_none() {
            self.rebuild().await?;
        }
        let token = self.store.get("feed:token").await?.unwrap_or_default();
        let mut stream = match self.deps.watch(&token, false).await {
            Ok(s) => s,
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                // Our position is older than the feed retains: changes were
                // missed, so only a rebuild makes the index whole again.
                tracing::warn!("change feed position expired; rebuilding the due index");
                self.rebuild().await?;
                self.store.set("feed:token", "").await?;
                return Ok(());
            }
            Err(s) => return Err(s.into()),
        };
        let mut renewed = Instant::now();
        loop {
            if renewed.elapsed() > LOCK_TTL / 3 {
                if !self.store.hold_lock(LOCK, &self.owner, LOCK_TTL).await? {
                    tracing::info!("lost the change feed lock to another replica");
                    return Ok(());
                }
                renewed = Instant::now();
            }
            let first = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                m = tokio::time::timeout(LOCK_TTL / 3, stream.message()) => m,
            };
            let first = match first {
                Err(_) => continue,
                Ok(m) => match m? {
                    Some(c) => c,
                    None => return Ok(()),
                },
            };
            // Gather what is already waiting so a burst of changes to one
            // customer costs one re-plan.
            let mut changes = vec![first];
            while changes.len() < 256 {
                match tokio::time::timeout(Duration::from_millis(20), stream.message()).await {
                    Ok(Ok(Some(c))) => changes.push(c),
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(e)) => return Err(e.into()),
                }
            }
            self.apply_changes(&changes).await?;
            if let Some(last) = changes.last() {
                self.store.set("feed:token", &last.resume_token).await?;
            }
            metrics::feed_changes(changes.len());
        }
    }

    /// Re-plans the customers a batch of changes touched, and counts new
    /// inbound contacts for the forecast.
    pub async fn apply_changes(&self, changes: &[pb::ProfileChange]) -> anyhow::Result<()> {
        let customers: BTreeSet<&str> = changes.iter().map(|c| c.customer_id.as_str()).collect();
        let tz = self.policy.current().compliance.default_time_zone.0;
        let since = forecast_weeks(self.clock.now())
            .first()
            .copied()
            .unwrap_or_default()
            * WEEK_MS;
        for customer in customers {
            if rapport_kit::validate::id("customer_id", customer).is_err() {
                continue;
            }
            let view = self.replan(customer).await?;
            if let Some(view) = view {
                let mut slots = Vec::new();
                for change in changes.iter().filter(|c| c.customer_id == customer) {
                    let contact = matches!(
                        pb::ChangeKind::try_from(change.kind),
                        Ok(pb::ChangeKind::ContactRecorded | pb::ChangeKind::Complaint)
                    );
                    if contact && !change.ref_id.is_empty() {
                        slots.extend(inbound_slots(&view, tz, since, Some(&change.ref_id)));
                    }
                }
                self.store.count_inbound(&slots).await?;
            }
        }
        Ok(())
    }
}
