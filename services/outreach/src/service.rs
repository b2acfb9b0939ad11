//! The gRPC surface of the outreach scheduler: operator RPCs (care plans,
//! manual care, callbacks, cancellation, listings, the forecast), the
//! dialers' stream and acknowledgements, and outcomes.

use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rapport_kit::validate::{self, FieldError};
use rapport_proto as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::error::dependency;
use crate::store::{
    CancelRefused, Meta, NewTask, OutcomeRefused, Source, TaskState, UpsertMode, timestamp,
};
use crate::tasks;

/// Requests a dialer reads per round trip.
const DELIVERY_BATCH: usize = 64;
/// Longest `ListDue` page.
const MAX_PAGE: usize = 1000;

pub(crate) struct Outreach {
    pub(crate) engine: Engine,
    pub(crate) region: rapport_kit::phone::Region,
    /// Cancelled at shutdown so dialer streams end and the server drains.
    pub(crate) shutdown: CancellationToken,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn at(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    tasks::millis(ts).and_then(DateTime::from_timestamp_millis)
}

impl Outreach {
    fn now(&self) -> DateTime<Utc> {
        self.engine.clock.now()
    }

    /// The customer's profile, NOT_FOUND when unknown.
    async fn known_customer(&self, customer_id: &str) -> Result<pb::ProfileView, Status> {
        validate::id("customer_id", customer_id)?;
        match self.engine.deps.profile(customer_id).await {
            Ok(Some(view)) => Ok(view),
            Ok(None) => Err(Status::not_found(format!(
                "customer {customer_id} is unknown to profile"
            ))),
            Err(s) => Err(dependency("profile", s)),
        }
    }

    async fn view_of(&self, id: &str) -> Result<pb::CareTask, Status> {
        match self.engine.store.task(id).await? {
            Some(t) => Ok(t.view()),
            None => Err(Status::not_found(format!("care task {id} not found"))),
        }
    }
}

fn parse_tag(field: &str, raw: &str, author: &str) -> Result<pb::CommunicationTag, FieldError> {
    let (kind, text) = raw
        .split_once(':')
        .ok_or_else(|| FieldError::new(field, "must be \"kind:text\", e.g. \"interest:golf\""))?;
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "address_form" | "address" => pb::TagKind::AddressForm,
        "call_pattern" => pb::TagKind::CallPattern,
        "handling_habit" | "habit" => pb::TagKind::HandlingHabit,
        "caution" => pb::TagKind::Caution,
        "interest" => pb::TagKind::Interest,
        "other" => pb::TagKind::Other,
        other => {
            return Err(FieldError::new(
                field,
                format!(
                    "unknown tag kind {other:?} (address_form, call_pattern, handling_habit, caution, interest, other)"
                ),
            ));
        }
    };
    let text = text.trim();
    validate::text(field, text, 200)?;
    if text.is_empty() {
        return Err(FieldError::new(field, "tag text must not be empty"));
    }
    Ok(pb::CommunicationTag {
        kind: kind as i32,
        text: text.to_owned(),
        author: author.to_owned(),
        ..Default::default()
    })
}

fn contact_outcome(outcome: pb::CareOutcome) -> pb::ContactOutcome {
    match outcome {
        pb::CareOutcome::Reached => pb::ContactOutcome::Resolved,
        _ => pb::ContactOutcome::Unresolved,
    }
}

#[tonic::async_trait]
impl pb::outreach_service_server::OutreachService for Outreach {
    async fn schedule_callback(
        &self,
        request: Request<pb::ScheduleCallbackRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        let r = request.into_inner();
        let now = self.now();
        let policy = self.engine.policy.current();
        validate::id("call_id", &r.call_id)?;
        validate::optional_id("center_id", &r.center_id)?;
        validate::text("ivr_selection", &r.ivr_selection, 200)?;
        if !r.time_zone.is_empty() && r.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(FieldError::new("time_zone", "unknown IANA time zone").into());
        }
        let phone = if r.phone.is_empty() {
            String::new()
        } else {
            rapport_kit::phone::normalize(&r.phone, self.region)
                .map_err(|e| FieldError::new("phone", e.to_string()))?
                .as_str()
                .to_owned()
        };
        if r.customer_id.is_empty() && phone.is_empty() {
            return Err(
                FieldError::new("customer_id", "a customer id or a phone is required").into(),
            );
        }
        if !r.customer_id.is_empty() {
            self.known_customer(&r.customer_id).await?;
        }
        // Without a window the caller wants the call back today.
        let default_hours = 4;
        let (start, end) = match &r.window {
            None => (now, now + chrono::Duration::hours(default_hours)),
            Some(w) => {
                let start = at(w.start.as_ref()).unwrap_or(now);
                let end = at(w.end.as_ref())
                    .ok_or_else(|| FieldError::new("window.end", "is required with a window"))?;
                if end <= start {
                    return Err(FieldError::new("window.end", "must be after window.start").into());
                }
                if end <= now {
                    return Err(FieldError::new("window.end", "is in the past").into());
                }
                (start, end)
            }
        };
        let id = format!("cb:{}", r.call_id);
        let priority = if r.priority == 0 {
            policy.callbacks.priority
        } else {
            r.priority.min(crate::store::MAX_PRIORITY)
        };
        let task = pb::CareTask {
            task_id: id.clone(),
            customer_id: r.customer_id.clone(),
            kind: pb::CareTaskKind::Callback as i32,
            state: pb::CareTaskState::Pending as i32,
            due_at: Some(timestamp(start.max(now).timestamp_millis())),
            window: Some(pb::TimeRange {
                start: Some(timestamp(start.timestamp_millis())),
                end: Some(timestamp(end.timestamp_millis())),
            }),
            priority,
            channel: policy.callbacks.channel.to_proto() as i32,
            theme: if r.ivr_selection.is_empty() {
                "Callback as promised".to_owned()
            } else {
                format!("Callback about {}", r.ivr_selection)
            },
            reason: format!(
                "the caller accepted a callback on call {} instead of waiting",
                r.call_id
            ),
            ..Default::default()
        };
        let new = NewTask {
            due_ms: start.max(now).timestamp_millis(),
            periodic: false,
            source: Source::Callback,
            meta: Meta {
                max_attempts: policy.callbacks.max_attempts,
                retry_spacing_ms: i64::from(policy.callbacks.retry_spacing_minutes) * 60_000,
                skill: policy.callbacks.skill.clone(),
                center: r.center_id.clone(),
                phone,
                call_id: r.call_id.clone(),
                capped: false,
                time_zone: r.time_zone.clone(),
            },
            task,
        };
        let owner = if r.customer_id.is_empty() {
            format!("phone:{}", new.meta.phone)
        } else {
            r.customer_id.clone()
        };
        self.engine
            .store
            .upsert(&owner, UpsertMode::Add, &[new], now.timestamp_millis())
            .await?;
        Ok(Response::new(self.view_of(&id).await?))
    }

    async fn schedule_care(
        &self,
        request: Request<pb::ScheduleCareRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        let r = request.into_inner();
        let now = self.now();
        let policy = self.engine.policy.current();
        validate::text("theme", &r.theme, 200)?;
        validate::text("reason", &r.reason, 500)?;
        validate::optional_id("preferred_agent_id", &r.preferred_agent_id)?;
        let need = validate::enumeration::<pb::Need>("need", r.need, true)?;
        let kind = match pb::CareTaskKind::try_from(r.kind) {
            Ok(pb::CareTaskKind::Unspecified) => pb::CareTaskKind::Manual,
            Ok(pb::CareTaskKind::Callback) => {
                return Err(FieldError::new("kind", "use ScheduleCallback for callbacks").into());
            }
            Ok(k) => k,
            Err(_) => return Err(FieldError::new("kind", "unknown care task kind").into()),
        };
        let due = match at(r.due_at.as_ref()) {
            None => now,
            Some(d) if d < now - chrono::Duration::minutes(5) => {
                return Err(FieldError::new("due_at", "is in the past").into());
            }
            Some(d) => d.max(now),
        };
        let view = self.known_customer(&r.customer_id).await?;
        let need_policy =
            crate::policy::NeedName::from_proto(need).and_then(|_| policy.needs.get(need));
        let (theme, points, channel, skill, attempts, spacing, priority) = match need_policy {
            Some(n) => (
                n.theme.clone(),
                n.talking_points.clone(),
                n.channel.to_proto(),
                n.skill.clone(),
                n.max_attempts,
                i64::from(n.retry_spacing_minutes) * 60_000,
                n.priority,
            ),
            None => (
                "Care call".to_owned(),
                Vec::new(),
                policy.callbacks.channel.to_proto(),
                policy.callbacks.skill.clone(),
                policy.callbacks.max_attempts,
                i64::from(policy.callbacks.retry_spacing_minutes) * 60_000,
                1,
            ),
        };
        let preferred = if r.preferred_agent_id.is_empty() {
            view.customer
                .as_ref()
                .and_then(|c| c.preferences.as_ref())
                .map(|p| {
                    if p.dedicated_field_manager_id.is_empty() {
                        p.preferred_agent_id.clone()
                    } else {
                        p.dedicated_field_manager_id.clone()
                    }
                })
                .unwrap_or_default()
        } else {
            r.preferred_agent_id.clone()
        };
        validate::optional_id("request_id", &r.request_id)?;
        let id = if r.request_id.is_empty() {
            format!("manual:{}", uuid::Uuid::now_v7())
        } else {
            format!("manual:{}", r.request_id)
        };
        if !r.request_id.is_empty()
            && let Some(existing) = self.engine.store.task(&id).await?
        {
            if existing.customer != r.customer_id {
                return Err(
                    FieldError::new("request_id", "already used for another customer").into(),
                );
            }
            return Ok(Response::new(existing.view()));
        }
        let task = pb::CareTask {
            task_id: id.clone(),
            customer_id: r.customer_id.clone(),
            kind: kind as i32,
            need: need as i32,
            state: pb::CareTaskState::Pending as i32,
            due_at: Some(timestamp(due.timestamp_millis())),
            priority,
            channel: channel as i32,
            theme: if r.theme.is_empty() {
                theme
            } else {
                r.theme.clone()
            },
            talking_points: points,
            reason: if r.reason.is_empty() {
                "scheduled by an operator".to_owned()
            } else {
                r.reason.clone()
            },
            preferred_agent_id: preferred,
            ..Default::default()
        };
        let new = NewTask {
            due_ms: due.timestamp_millis(),
            periodic: false,
            source: Source::Manual,
            meta: Meta {
                max_attempts: attempts,
                retry_spacing_ms: spacing,
                skill,
                center: String::new(),
                capped: true,
                ..Meta::default()
            },
            task,
        };
        self.engine
            .store
            .upsert(
                &r.customer_id,
                UpsertMode::Add,
                &[new],
                now.timestamp_millis(),
            )
            .await?;
        Ok(Response::new(self.view_of(&id).await?))
    }

    async fn cancel_care(
        &self,
        request: Request<pb::CancelCareRequest>,
    ) -> Result<Response<pb::CareTask>, Status> {
        let r = request.into_inner();
        validate::text("task_id", &r.task_id, 200)?;
        if r.task_id.is_empty() {
            return Err(FieldError::new("task_id", "must not be empty").into());
        }
        validate::text("reason", &r.reason, 500)?;
        let reason = if r.reason.is_empty() {
            "cancelled by an operator".to_owned()
        } else {
            r.reason
        };
        match self
            .engine
            .store
            .cancel(&r.task_id, &reason, self.engine.clock.now_ms())
            .await?
        {
            Ok(()) => Ok(Response::new(self.view_of(&r.task_id).await?)),
            Err(CancelRefused::Missing) => Err(Status::not_found(format!(
                "care task {} not found",
                r.task_id
            ))),
            Err(CancelRefused::TooLate(state)) => Err(Status::failed_precondition(format!(
                "care task {} is already {state}",
                r.task_id
            ))),
        }
    }

    async fn get_care_plan(
        &self,
        request: Request<pb::GetCarePlanRequest>,
    ) -> Result<Response<pb::CarePlan>, Status> {
        let r = request.into_inner();
        self.known_customer(&r.customer_id).await?;
        let tasks = self
            .engine
            .store
            .tasks_of(&r.customer_id)
            .await?
            .into_iter()
            .filter(|t| {
                matches!(
                    t.state,
                    TaskState::Pending | TaskState::Claimed | TaskState::Dispatched
                )
            })
            .map(|t| t.view())
            .collect();
        Ok(Response::new(pb::CarePlan {
            customer_id: r.customer_id,
            tasks,
        }))
    }

    async fn list_due(
        &self,
        request: Request<pb::ListDueRequest>,
    ) -> Result<Response<pb::ListDueResponse>, Status> {
        let r = request.into_inner();
        let before = at(r.before.as_ref()).unwrap_or_else(|| self.now());
        let limit = match r.page_size {
            0 => 100,
            n if n as usize > MAX_PAGE => {
                return Err(FieldError::new("page_size", format!("at most {MAX_PAGE}")).into());
            }
            n => n as usize,
        };
        let offset: usize = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| FieldError::new("page_token", "not a token from ListDue"))?
        };
        let (tasks, more) = self
            .engine
            .store
            .list_due(before.timestamp_millis(), offset, limit)
            .await?;
        Ok(Response::new(pb::ListDueResponse {
            tasks: tasks.iter().map(|t| t.view()).collect(),
            next_page_token: if more {
                (offset + limit).to_string()
            } else {
                String::new()
            },
        }))
    }

    type WatchOutboundStream = Stream<pb::DialRequest>;

    async fn watch_outbound(
        &self,
        request: Request<pb::WatchOutboundRequest>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let r = request.into_inner();
        validate::id("dialer_id", &r.dialer_id)?;
        let mut reader = self.engine.store.reader(&r.dialer_id).await?;
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<pb::DialRequest, Status>>(DELIVERY_BATCH);
        let policy = self.engine.policy.clone();
        let shutdown = self.shutdown.clone();
        let dialer = r.dialer_id.clone();
        tokio::spawn(async move {
            loop {
                let p = policy.current();
                let redeliver =
                    Duration::from_secs(u64::from(p.dispatch.redelivery_seconds.max(1)));
                // Pace deliveries to this dialer: at most this many dial
                // requests per second.
                let pace = Duration::from_secs(1) / p.blending.max_dials_per_second.max(1);
                let batch = DELIVERY_BATCH.min(p.blending.max_dials_per_second.max(1) as usize);
                let read = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    read = reader.next(batch, Duration::from_millis(500), redeliver) => read,
                };
                let deliveries = match read {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), dialer = %dialer, "reading dial requests failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                crate::metrics::redeliveries(deliveries.iter().filter(|d| d.redelivered).count());
                crate::metrics::delivered(deliveries.len());
                for d in deliveries {
                    if tx.send(Ok(d.request)).await.is_err() {
                        // The dialer went away; what it did not acknowledge
                        // is redelivered to a dialer after the timeout.
                        return;
                    }
                    tokio::time::sleep(pace).await;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn ack_dial(
        &self,
        request: Request<pb::AckDialRequest>,
    ) -> Result<Response<pb::AckDialResponse>, Status> {
        let r = request.into_inner();
        validate::id("dialer_id", &r.dialer_id)?;
        let valid = r.delivery_id.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
        if !valid {
            return Err(
                FieldError::new("delivery_id", "not a delivery id from WatchOutbound").into(),
            );
        }
        // Acknowledging twice (after a redelivery) is harmless.
        let n = self.engine.store.ack(&[r.delivery_id]).await?;
        crate::metrics::acked(n);
        Ok(Response::new(pb::AckDialResponse {}))
    }

    async fn record_outcome(
        &self,
        request: Request<pb::RecordOutcomeRequest>,
    ) -> Result<Response<pb::RecordOutcomeResponse>, Status> {
        let r = request.into_inner();
        if r.task_id.is_empty() {
            return Err(FieldError::new("task_id", "must not be empty").into());
        }
        validate::text("task_id", &r.task_id, 200)?;
        let outcome = validate::enumeration::<pb::CareOutcome>("outcome", r.outcome, false)?;
        if outcome == pb::CareOutcome::Unspecified {
            return Err(FieldError::new("outcome", "must be set").into());
        }
        if r.fencing_token == 0 {
            return Err(
                FieldError::new("fencing_token", "must be the token of the dial request").into(),
            );
        }
        validate::text("notes", &r.notes, 2000)?;
        validate::optional_id("agent_id", &r.agent_id)?;
        let author = if r.agent_id.is_empty() {
            "outreach".to_owned()
        } else {
            r.agent_id.clone()
        };
        let tags = r
            .new_tags
            .iter()
            .enumerate()
            .map(|(i, t)| parse_tag(&format!("new_tags[{i}]"), t, &author))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, t) in r.topics.iter().enumerate() {
            validate::text(&format!("topics[{i}]"), t, 100)?;
        }

        let Some(stored) = self.engine.store.task(&r.task_id).await? else {
            return Err(Status::not_found(format!(
                "care task {} not found",
                r.task_id
            )));
        };
        if stored.state != TaskState::Dispatched {
            return Err(Status::failed_precondition(format!(
                "care task {} is {:?}, not dispatched",
                r.task_id, stored.state
            )));
        }
        if stored.fence != r.fencing_token {
            return Err(Status::failed_precondition(format!(
                "stale fencing token {} for care task {} (current {})",
                r.fencing_token, r.task_id, stored.fence
            )));
        }

        let now = self.now();
        let policy = self.engine.policy.current();
        let contact_id = format!("{}:c{}:a{}", stored.id, stored.cycle, stored.attempt);
        let agent = if r.agent_id.is_empty() {
            stored.agent_id.clone()
        } else {
            r.agent_id.clone()
        };
        if !stored.customer.is_empty() && !stored.customer.starts_with("phone:") {
            let customer = stored.customer.as_str();
            // Written first and idempotently (keyed by the attempt), so a
            // retried RecordOutcome after a failure here repeats nothing.
            self.engine
                .deps
                .record_contact(
                    customer,
                    pb::ContactRecord {
                        contact_id: contact_id.clone(),
                        channel: stored.task.channel,
                        direction: pb::Direction::Outbound as i32,
                        started_at: Some(timestamp(now.timestamp_millis())),
                        agent_id: agent.clone(),
                        outcome: contact_outcome(outcome) as i32,
                        notes: r.notes.clone(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|s| dependency("profile", s))?;
            if !r.notes.is_empty() || !tags.is_empty() {
                self.engine
                    .deps
                    .add_care_note(pb::CareNote {
                        note_id: contact_id.clone(),
                        customer_id: customer.to_owned(),
                        contact_id: contact_id.clone(),
                        author: author.clone(),
                        text: if r.notes.is_empty() {
                            format!("care call: {}", stored.task.theme)
                        } else {
                            r.notes.clone()
                        },
                        topics: r.topics.clone(),
                        added_tags: tags,
                        created_at: None,
                    })
                    .await
                    .map_err(|s| dependency("profile", s))?;
            }
            if outcome == pb::CareOutcome::OptedOut {
                self.engine
                    .deps
                    .set_consent(
                        customer,
                        pb::Consent {
                            care_calls: false,
                            do_not_call: true,
                            do_not_call_source: "customer opted out on a care call".to_owned(),
                            do_not_call_at: Some(timestamp(now.timestamp_millis())),
                        },
                    )
                    .await
                    .map_err(|s| dependency("profile", s))?;
            }
        }

        let (action, task) = crate::engine::after_outcome(&policy, &stored, outcome, now);
        match self
            .engine
            .store
            .outcome(
                &stored.id,
                r.fencing_token,
                action,
                &task,
                now.timestamp_millis(),
            )
            .await?
        {
            Ok(()) => {}
            Err(OutcomeRefused::Missing) => {
                return Err(Status::not_found(format!(
                    "care task {} not found",
                    r.task_id
                )));
            }
            Err(OutcomeRefused::StaleFence) => {
                return Err(Status::failed_precondition(format!(
                    "stale fencing token {} for care task {}",
                    r.fencing_token, r.task_id
                )));
            }
            Err(OutcomeRefused::NotDispatched(state)) => {
                return Err(Status::failed_precondition(format!(
                    "care task {} is {state}, not dispatched",
                    r.task_id
                )));
            }
        }
        crate::metrics::outcome(
            &outcome
                .as_str_name()
                .trim_start_matches("CARE_OUTCOME_")
                .to_ascii_lowercase(),
        );
        let next = self.engine.store.task(&stored.id).await?.map(|t| t.view());
        Ok(Response::new(pb::RecordOutcomeResponse { next }))
    }

    async fn get_forecast(
        &self,
        request: Request<pb::GetForecastRequest>,
    ) -> Result<Response<pb::Forecast>, Status> {
        let r = request.into_inner();
        validate::optional_id("center_id", &r.center_id)?;
        if !r.center_id.is_empty() && r.center_id != self.engine.default_center {
            return Err(Status::not_found(format!(
                "this scheduler forecasts center {}, not {}",
                self.engine.default_center, r.center_id
            )));
        }
        let policy = self.engine.policy.current();
        let level = if r.target_service_level == 0.0 {
            0.8
        } else {
            r.target_service_level
        };
        if !(level > 0.0 && level < 1.0) {
            return Err(FieldError::new("target_service_level", "must be in (0, 1)").into());
        }
        let answer_s = if r.target_answer_s == 0 {
            20
        } else {
            r.target_answer_s
        };
        if answer_s > 3600 {
            return Err(FieldError::new("target_answer_s", "at most 3600").into());
        }
        let weeks = crate::feed::forecast_weeks(self.now());
        let counts = self.engine.store.inbound_counts(&weeks).await?;
        let handle_s = f64::from(policy.forecast.mean_handle_s.max(1));
        let hours = (0..168u32)
            .map(|h| {
                let total: u64 = counts.iter().map(|w| w[h as usize]).sum();
                let expected = total as f64 / counts.len().max(1) as f64;
                pb::HourForecast {
                    day: (h / 24 + 1) as i32,
                    hour: h % 24,
                    expected_contacts: expected,
                    agents_needed: crate::forecast::erlang_c_agents(
                        expected,
                        handle_s,
                        level,
                        f64::from(answer_s),
                    ),
                }
            })
            .collect();
        Ok(Response::new(pb::Forecast { hours }))
    }

    async fn rebuild_due_index(
        &self,
        _: Request<pb::RebuildDueIndexRequest>,
    ) -> Result<Response<pb::RebuildDueIndexResponse>, Status> {
        let report = self
            .engine
            .rebuild()
            .await
            .map_err(|e| match e.downcast_ref::<Status>() {
                Some(s) => dependency("profile", s.clone()),
                None => match e.downcast::<crate::store::StoreError>() {
                    Ok(store) => store.into(),
                    Err(e) => {
                        rapport_kit::status::internal("rebuilding the due index failed", e.as_ref())
                    }
                },
            })?;
        Ok(Response::new(pb::RebuildDueIndexResponse {
            customers: report.customers,
            tasks: report.tasks,
            seconds: report.seconds,
        }))
    }
}
