//! Hands accepted callbacks to the outreach scheduler, which places them in
//! the caller's window (with its consent, legal-hours and blending checks).
//!
//! The callback script records every accepted callback in the center's
//! `handoff` set in the same step that takes the caller out of the queue,
//! so a hand-over is never lost: `AcceptCallback` tries it at once, and
//! every replica's hand-over loop retries whatever is still waiting
//! (outreach down, a routing replica killed between the two steps).
//! Outreach's `ScheduleCallback` is idempotent on the call id, so two
//! replicas handing over the same task schedule one call.

use std::collections::HashMap;
use std::time::Duration;

use rapport_kit::client::Channel;
use rapport_proto as pb;
use rapport_proto::outreach_service_client::OutreachServiceClient;
use tonic::Code;

use crate::metrics;
use crate::state::{Center, Handoff, LiveState, StateError};

/// Tasks handed over per center and round.
const BATCH: usize = 50;
/// How long a failed hand-over waits before the next try.
const RETRY_AFTER_MS: i64 = 5_000;

/// The outreach scheduler's client. Cheap to clone.
#[derive(Clone)]
pub struct Outreach {
    client: OutreachServiceClient<Channel>,
}

impl Outreach {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: OutreachServiceClient::new(channel),
        }
    }

    /// Schedules one persisted callback task with outreach.
    async fn schedule(
        &self,
        center: &Center,
        task: &HashMap<String, String>,
    ) -> Result<(), tonic::Status> {
        let get = |k: &str| task.get(k).cloned().unwrap_or_default();
        let ms = |k: &str| task.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let ts = |ms: i64| prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        };
        let mut client = self.client.clone();
        client
            .schedule_callback(pb::ScheduleCallbackRequest {
                call_id: get("call_id"),
                customer_id: get("customer_id"),
                phone: get("phone"),
                priority: get("priority").parse().unwrap_or(0),
                window: Some(pb::TimeRange {
                    start: Some(ts(ms("start_ms"))),
                    end: Some(ts(ms("end_ms"))),
                }),
                center_id: center.id().to_owned(),
                ivr_selection: get("ivr_selection"),
                time_zone: String::new(),
            })
            .await?;
        Ok(())
    }

    /// Hands one task over and records the result. Refusals that a retry
    /// cannot change (bad input, an unknown customer, a window already
    /// over) end the hand-over with the reason; anything else retries.
    pub async fn hand_over(
        &self,
        state: &LiveState,
        center: &Center,
        task: &HashMap<String, String>,
        now_ms: i64,
    ) -> Result<bool, StateError> {
        let id = task.get("task_id").map(String::as_str).unwrap_or_default();
        if id.is_empty() {
            return Ok(false);
        }
        match self.schedule(center, task).await {
            Ok(()) => {
                state
                    .handoff_result(center, id, Handoff::Done, now_ms)
                    .await?;
                metrics::callback_handoff("scheduled");
                Ok(true)
            }
            Err(s)
                if matches!(
                    s.code(),
                    Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition
                ) =>
            {
                tracing::warn!(task_id = %id, code = ?s.code(), message = s.message(), "outreach refused the callback");
                state
                    .handoff_result(center, id, Handoff::Failed(s.message()), now_ms)
                    .await?;
                metrics::callback_handoff("refused");
                Ok(false)
            }
            Err(s) => {
                tracing::debug!(task_id = %id, code = ?s.code(), "outreach unavailable; the callback hand-over will be retried");
                state
                    .handoff_result(
                        center,
                        id,
                        Handoff::RetryAt(now_ms + RETRY_AFTER_MS),
                        now_ms,
                    )
                    .await?;
                metrics::callback_handoff("retry");
                Ok(false)
            }
        }
    }

    /// One round over every registered center.
    pub async fn round(&self, state: &LiveState, now_ms: i64) -> Result<usize, StateError> {
        let mut handed = 0;
        for id in state.centers().await? {
            if rapport_kit::validate::id("center", &id).is_err() {
                continue;
            }
            let center = Center::new(&id);
            for task in state.pending_handoffs(&center, now_ms, BATCH).await? {
                if self.hand_over(state, &center, &task, now_ms).await? {
                    handed += 1;
                }
            }
        }
        Ok(handed)
    }
}

/// Retries waiting hand-overs every `interval` until the task is aborted.
pub async fn run(
    outreach: Outreach,
    state: LiveState,
    clock: crate::sweeper::Clock,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = outreach.round(&state, clock()).await {
            tracing::warn!(error = %e, "handing callbacks to outreach failed; retrying");
        }
    }
}
