//! The gRPC surface of routing: validates requests, gathers profile and
//! classification, ranks candidates and asks the live state to place the
//! contact. RPCs whose behaviour belongs to the personalized-routing issue
//! (offers, callbacks, streams, queue stats, outbound) answer UNIMPLEMENTED
//! until it lands.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rapport_kit::phone::Region;
use rapport_kit::validate::{self, FieldError};
use rapport_proto as pb;
use tonic::{Request, Response, Status};

use crate::deps::{Deps, Resolved};
use crate::groups::agent_groups;
use crate::policy::RoutingPolicy;
use crate::ranking::{rank, skill_reason};
use crate::requirements::{self, Derived};
use crate::state::{
    AgentSnapshot, CallSnapshot, Center, LiveState, NewCall, Placement, Status as AgentStatus,
    StatusChange, Target,
};

/// Limits on agent attributes. They bound the number of requirement groups
/// an agent is indexed under, and so the cost of every status change.
const MAX_SKILLS: usize = 16;
const MAX_POOLS: usize = 4;
const MAX_LANGUAGES: usize = 4;
const MAX_DIALECTS: usize = 4;
const MAX_TEXT: usize = 16 * 1024;
const MAX_NOTES: usize = 2000;

pub(crate) struct Routing {
    pub(crate) state: LiveState,
    pub(crate) deps: Deps,
    pub(crate) policy: Arc<RoutingPolicy>,
    pub(crate) default_center: String,
    pub(crate) region: Region,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "RoutingService.{rpc} is not implemented yet (personalized routing issue)"
    ))
}

impl Routing {
    fn center(&self, center_id: &str) -> Result<Center, FieldError> {
        if center_id.is_empty() {
            Ok(Center::new(&self.default_center))
        } else {
            validate::id("center_id", center_id)?;
            Ok(Center::new(center_id))
        }
    }

    /// Builds the agent's public state, and the decision for a contact that
    /// turning ready assigned at once.
    async fn agent_state(
        &self,
        center: &Center,
        agent_id: &str,
        change: Option<&StatusChange>,
    ) -> Result<pb::AgentState, Status> {
        let snapshot = self.state.agent(center, agent_id).await?;
        let assigned = match change.and_then(|c| c.assigned_call.as_deref()) {
            Some(call_id) => {
                let call = self.state.call(center, call_id).await?;
                Some(assigned_from_queue(center, &call, &snapshot))
            }
            None => None,
        };
        Ok(agent_state(snapshot, assigned))
    }
}

fn agent_state(snapshot: AgentSnapshot, assigned: Option<pb::RouteDecision>) -> pb::AgentState {
    pb::AgentState {
        status: status_to_pb(snapshot.status) as i32,
        call_id: snapshot.call_id,
        status_since: timestamp(snapshot.status_since_ms),
        profile: Some(snapshot.profile),
        assigned,
    }
}

fn status_to_pb(status: AgentStatus) -> pb::AgentStatus {
    match status {
        AgentStatus::LoggedOut => pb::AgentStatus::LoggedOut,
        AgentStatus::NotReady => pb::AgentStatus::NotReady,
        AgentStatus::Ready => pb::AgentStatus::Ready,
        AgentStatus::Reserved => pb::AgentStatus::Reserved,
        AgentStatus::Busy => pb::AgentStatus::Busy,
    }
}

fn agent_ref(profile: &pb::AgentProfile) -> pb::AgentRef {
    pb::AgentRef {
        agent_id: profile.agent_id.clone(),
        name: profile.name.clone(),
        kind: profile.kind,
        phone: profile.phone.clone(),
    }
}

/// The decision for a queued contact handed to an agent that turned ready.
fn assigned_from_queue(
    center: &Center,
    call: &CallSnapshot,
    agent: &AgentSnapshot,
) -> pb::RouteDecision {
    let waited_s = call.get_i64("queue_wait_ms") / 1000;
    pb::RouteDecision {
        call_id: call.get("call_id").to_owned(),
        center_id: center.id().to_owned(),
        outcome: pb::RouteOutcome::Assigned as i32,
        agent: Some(agent_ref(&agent.profile)),
        reasons: vec![format!(
            "longest-waiting eligible contact in {} (waited {waited_s} s), taken when {} turned ready",
            call.get("group"),
            agent.profile.agent_id
        )],
        customer_id: call.get("customer_id").to_owned(),
        ..Default::default()
    }
}

fn call_status(status: &str) -> pb::CallStatus {
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

async fn call_state(
    state: &LiveState,
    center: &Center,
    call: CallSnapshot,
) -> Result<pb::CallState, Status> {
    let agent_id = call.get("agent_id");
    let agent = if agent_id.is_empty() {
        None
    } else {
        match state.agent(center, agent_id).await {
            Ok(a) => Some(agent_ref(&a.profile)),
            // The agent may have logged out since; the id still identifies it.
            Err(crate::state::StateError::NotFound(_)) => Some(pb::AgentRef {
                agent_id: agent_id.to_owned(),
                ..Default::default()
            }),
            Err(e) => return Err(e.into()),
        }
    };
    let status = call_status(call.get("status"));
    let queue_wait_ms = if status == pb::CallStatus::Queued {
        now_ms() - call.get_i64("arrived_ms")
    } else {
        call.get_i64("queue_wait_ms")
    };
    Ok(pb::CallState {
        call_id: call.get("call_id").to_owned(),
        center_id: center.id().to_owned(),
        status: status as i32,
        agent,
        customer_id: call.get("customer_id").to_owned(),
        requirements: Some(pb::Requirements {
            group: call.get("group").to_owned(),
            skill: call.get("skill").to_owned(),
            min_score: call.get("min_score").parse().unwrap_or(0.0),
            ..Default::default()
        }),
        arrived_at: timestamp(call.get_i64("arrived_ms")),
        queue_wait_s: (queue_wait_ms.max(0) / 1000) as u32,
        queue_position: call.queue_position.unwrap_or(0) as u32,
        ivr_selection: call.get("ivr_selection").to_owned(),
        channel: call.get("channel").parse().unwrap_or(0),
    })
}

/// A validated RouteCall request.
struct RouteInput {
    center: Center,
    call_id: String,
    phone: Option<String>,
    customer_id: Option<String>,
    selection_id: String,
    channel: pb::Channel,
}

impl Routing {
    fn validate_route(&self, req: &pb::RouteCallRequest) -> Result<RouteInput, FieldError> {
        validate::id("call_id", &req.call_id)?;
        let center = self.center(&req.center_id)?;
        validate::optional_id("customer_id", &req.customer_id)?;
        let phone = if req.caller_phone.is_empty() {
            None
        } else {
            Some(
                rapport_kit::phone::normalize(&req.caller_phone, self.region)
                    .map_err(|e| FieldError::new("caller_phone", e.to_string()))?
                    .as_str()
                    .to_owned(),
            )
        };
        if !self.policy.selections.contains_key(&req.ivr_selection) {
            return Err(FieldError::new(
                "ivr_selection",
                format!(
                    "unknown IVR selection {:?}",
                    truncate(&req.ivr_selection, 40)
                ),
            ));
        }
        let channel = match validate::enumeration::<pb::Channel>("channel", req.channel, true)? {
            pb::Channel::Unspecified => pb::Channel::Voice,
            c => c,
        };
        validate::text("language_hint", &req.language_hint, 16)?;
        if req.text.len() > MAX_TEXT {
            return Err(FieldError::new(
                "text",
                format!("must be at most {MAX_TEXT} bytes"),
            ));
        }
        if let Some(campaign) = &req.campaign {
            validate::optional_id("campaign.campaign_id", &campaign.campaign_id)?;
            validate::text("campaign.title", &campaign.title, 200)?;
        }
        Ok(RouteInput {
            center,
            call_id: req.call_id.clone(),
            phone,
            customer_id: (!req.customer_id.is_empty()).then(|| req.customer_id.clone()),
            selection_id: req.ivr_selection.clone(),
            channel,
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn validate_agent(agent: Option<&pb::AgentProfile>) -> Result<pb::AgentProfile, FieldError> {
    let mut agent = agent
        .cloned()
        .ok_or_else(|| FieldError::new("agent", "is required"))?;
    validate::id("agent.agent_id", &agent.agent_id)?;
    validate::text("agent.name", &agent.name, 100)?;
    let kind = validate::enumeration::<pb::AgentKind>("agent.kind", agent.kind, true)?;
    if kind == pb::AgentKind::Unspecified {
        agent.kind = pb::AgentKind::Desk as i32;
    }
    if agent.skills.is_empty() {
        return Err(FieldError::new(
            "agent.skills",
            "must name at least one skill",
        ));
    }
    if agent.skills.len() > MAX_SKILLS {
        return Err(FieldError::new(
            "agent.skills",
            format!("at most {MAX_SKILLS} skills"),
        ));
    }
    for (skill, score) in &agent.skills {
        validate::name("agent.skills", skill)?;
        validate::score(&format!("agent.skills[{skill}]"), *score)?;
    }
    let lists = [
        ("agent.languages", &agent.languages, MAX_LANGUAGES),
        ("agent.dialects", &agent.dialects, MAX_DIALECTS),
        ("agent.pools", &agent.pools, MAX_POOLS),
    ];
    for (field, list, max) in lists {
        if list.len() > max {
            return Err(FieldError::new(field, format!("at most {max} entries")));
        }
        for (i, value) in list.iter().enumerate() {
            validate::name(&format!("{field}[{i}]"), value)?;
        }
    }
    for list in [&mut agent.languages, &mut agent.dialects, &mut agent.pools] {
        list.sort();
        list.dedup();
    }
    if let Some(traits) = &agent.traits {
        validate::score("agent.traits.empathy", traits.empathy)?;
        validate::score("agent.traits.de_escalation", traits.de_escalation)?;
    }
    for (i, cap) in agent.capacity.iter().enumerate() {
        validate::enumeration::<pb::Channel>(
            &format!("agent.capacity[{i}].channel"),
            cap.channel,
            false,
        )?;
        if !(1..=50).contains(&cap.max) {
            return Err(FieldError::new(
                format!("agent.capacity[{i}].max"),
                "must be between 1 and 50",
            ));
        }
    }
    validate::text("agent.phone", &agent.phone, 32)?;
    Ok(agent)
}

/// Readable lines for the screen pop from the caller's profile.
fn screen_pop(view: Option<&pb::ProfileView>, c: Option<&pb::Classification>) -> pb::ScreenPop {
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

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::routing_service_server::RoutingService for Routing {
    async fn route_call(
        &self,
        request: Request<pb::RouteCallRequest>,
    ) -> Result<Response<pb::RouteDecision>, Status> {
        let req = request.into_inner();
        let input = self.validate_route(&req)?;
        let selection = &self.policy.selections[&input.selection_id];
        let mut degraded: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();

        // Who is calling. An unknown caller is routed with a default profile.
        let profile = match self
            .deps
            .resolve(input.customer_id.as_deref(), input.phone.as_deref())
            .await
        {
            Resolved::Found(view) => Some(*view),
            Resolved::Unknown => {
                notes.push("unknown caller: routed with the default profile".to_owned());
                None
            }
            Resolved::Failed(reason) => {
                degraded.push(reason);
                None
            }
        };
        let customer_id = profile
            .as_ref()
            .and_then(|p| p.customer.as_ref())
            .map(|c| c.customer_id.clone())
            .unwrap_or_default();

        // What kind of contact this is. Without classification the contact
        // is routed on the selection's skill alone.
        let classification = match self
            .deps
            .classify(pb::ClassifyRequest {
                profile: profile.clone(),
                contact: Some(pb::ContactContext {
                    channel: input.channel as i32,
                    ivr_selection: input.selection_id.clone(),
                    started_at: timestamp(now_ms()),
                }),
                text: req.text.clone(),
                language_hint: req.language_hint.clone(),
            })
            .await
        {
            Ok(c) => Some(c),
            Err(reason) => {
                degraded.push(reason);
                None
            }
        };

        let Derived {
            group,
            min_score,
            label,
            reasons: requirement_reasons,
        } = requirements::derive(&self.policy, selection, classification.as_ref());
        let group_key = group.to_string();

        let candidates = self
            .state
            .candidates(
                &input.center,
                &group_key,
                min_score,
                self.policy.max_candidates,
            )
            .await?;
        let ranked = rank(candidates.list);
        let ranked_ids: Vec<String> = ranked.iter().map(|c| c.agent_id.clone()).collect();

        let new_call = NewCall {
            call_id: &input.call_id,
            group: &group_key,
            min_score,
            fields: vec![
                ("customer_id", customer_id.clone()),
                ("ivr_selection", input.selection_id.clone()),
                ("skill", group.skill.clone()),
                ("channel", (input.channel as i32).to_string()),
            ],
        };
        let placement = self
            .state
            .place(&input.center, &new_call, &ranked_ids, now_ms())
            .await?;

        let mut decision = pb::RouteDecision {
            call_id: input.call_id.clone(),
            center_id: input.center.id().to_owned(),
            customer_id: customer_id.clone(),
            requirements: Some(pb::Requirements {
                skill: group.skill.clone(),
                min_score,
                pool: group.pool.clone().unwrap_or_default(),
                language: match &group.speech {
                    Some(crate::groups::Speech::Language(l)) => l.clone(),
                    _ => classification
                        .as_ref()
                        .map(|c| c.language.clone())
                        .unwrap_or_default(),
                },
                dialect: match &group.speech {
                    Some(crate::groups::Speech::Dialect(d)) => d.clone(),
                    _ => String::new(),
                },
                group: group_key.clone(),
            }),
            degraded: !degraded.is_empty(),
            degraded_reason: degraded.join("; "),
            ..Default::default()
        };
        if let Some(c) = &classification {
            decision.tier = c.tier;
            decision.patience_s = c.patience_s;
            decision.language = c.language.clone();
            decision.dialect = c.dialect.clone();
        }

        let mut reasons = Vec::new();
        match placement {
            Placement::Assigned { agent_id, ranked } => {
                let agent = self.state.agent(&input.center, &agent_id).await?;
                let score = agent
                    .profile
                    .skills
                    .get(&group.skill)
                    .copied()
                    .unwrap_or(0.0);
                decision.outcome = pb::RouteOutcome::Assigned as i32;
                decision.agent = Some(agent_ref(&agent.profile));
                if ranked {
                    reasons.push(skill_reason(
                        &group.skill,
                        score,
                        candidates.eligible,
                        &label,
                    ));
                } else {
                    reasons.push(format!(
                        "{} skill {score:.1}: best free {label} agent at reservation time",
                        group.skill
                    ));
                }
            }
            Placement::Queued { position } => {
                decision.outcome = pb::RouteOutcome::Queued as i32;
                decision.queue_position = position as u32;
                reasons.push(format!(
                    "no free {label} agent with {} ≥ {min_score:.1}; queued at position {position} in {group_key}",
                    group.skill
                ));
            }
            Placement::Existing { .. } => {
                // A retried call id: report the contact's current state.
                let call = self.state.call(&input.center, &input.call_id).await?;
                let state = call_state(&self.state, &input.center, call).await?;
                decision.outcome = match pb::CallStatus::try_from(state.status) {
                    Ok(pb::CallStatus::Queued) => pb::RouteOutcome::Queued,
                    Ok(pb::CallStatus::Offered | pb::CallStatus::Connected) => {
                        pb::RouteOutcome::Assigned
                    }
                    _ => pb::RouteOutcome::Unspecified,
                } as i32;
                decision.agent = state.agent;
                decision.queue_position = state.queue_position;
                decision.customer_id = state.customer_id;
                decision.requirements = state.requirements;
                reasons.push("call id already routed: current state returned".to_owned());
            }
        }
        reasons.extend(requirement_reasons);
        if let Some(c) = &classification {
            reasons.push(c.tier_reason.clone());
            reasons.push(c.patience_reason.clone());
        }
        reasons.extend(notes);
        if decision.degraded {
            reasons.push(format!("degraded: {}", decision.degraded_reason));
        }
        reasons.retain(|r| !r.is_empty());
        decision.reasons = reasons;
        decision.screen_pop = Some(screen_pop(profile.as_ref(), classification.as_ref()));

        tracing::info!(
            call_id = %decision.call_id,
            center = %decision.center_id,
            outcome = ?pb::RouteOutcome::try_from(decision.outcome).unwrap_or_default(),
            agent_id = decision.agent.as_ref().map(|a| a.agent_id.as_str()).unwrap_or(""),
            group = %group_key,
            degraded = decision.degraded,
            "routed"
        );
        Ok(Response::new(decision))
    }

    async fn get_call(
        &self,
        request: Request<pb::GetCallRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        let call = self.state.call(&center, &req.call_id).await?;
        Ok(Response::new(call_state(&self.state, &center, call).await?))
    }

    type WatchCallStream = Stream<pb::CallUpdate>;
    async fn watch_call(
        &self,
        _: Request<pb::WatchCallRequest>,
    ) -> Result<Response<Self::WatchCallStream>, Status> {
        Err(pending("WatchCall"))
    }

    async fn abandon_call(
        &self,
        _: Request<pb::AbandonCallRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        Err(pending("AbandonCall"))
    }

    async fn accept_callback(
        &self,
        _: Request<pb::AcceptCallbackRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        Err(pending("AcceptCallback"))
    }

    async fn complete_call(
        &self,
        request: Request<pb::CompleteCallRequest>,
    ) -> Result<Response<pb::CompleteCallResponse>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        validate::id("agent_id", &req.agent_id)?;
        let outcome = validate::enumeration::<pb::ContactOutcome>("outcome", req.outcome, true)?;
        if req.csat > 5 {
            return Err(FieldError::new("csat", "must be 0 (not given) or 1..=5").into());
        }
        validate::text("notes", &req.notes, MAX_NOTES)?;
        if req.handle_s > 86_400 {
            return Err(FieldError::new("handle_s", "must be at most 86400").into());
        }

        let completion = self
            .state
            .complete(&center, &req.call_id, &req.agent_id, now_ms())
            .await?;
        let call = self.state.call(&center, &req.call_id).await?;

        // The profile record is written once, by the completion that
        // actually released the agent.
        let customer_id = call.get("customer_id").to_owned();
        let mut recorded = false;
        if !completion.already_completed && !customer_id.is_empty() {
            let contact = pb::ContactRecord {
                contact_id: req.call_id.clone(),
                channel: call
                    .get("channel")
                    .parse()
                    .unwrap_or(pb::Channel::Voice as i32),
                direction: pb::Direction::Inbound as i32,
                started_at: timestamp(call.get_i64("arrived_ms")),
                ivr_selection: call.get("ivr_selection").to_owned(),
                queue_wait_s: (call.get_i64("queue_wait_ms").max(0) / 1000) as u32,
                handle_s: req.handle_s,
                agent_id: req.agent_id.clone(),
                outcome: if outcome == pb::ContactOutcome::Unspecified {
                    pb::ContactOutcome::Resolved as i32
                } else {
                    outcome as i32
                },
                complaint: req.complaint,
                escalation_threat: req.escalation_threat,
                csat: req.csat,
                notes: req.notes.clone(),
                ..Default::default()
            };
            match self.deps.record_contact(&customer_id, contact).await {
                Ok(()) => recorded = true,
                Err(status) => tracing::warn!(
                    call_id = %req.call_id,
                    code = ?status.code(),
                    message = status.message(),
                    "failed to record the contact in profile"
                ),
            }
        }

        let agent = self
            .agent_state(&center, &req.agent_id, Some(&completion.agent))
            .await?;
        let call = call_state(&self.state, &center, call).await?;
        Ok(Response::new(pb::CompleteCallResponse {
            call: Some(call),
            agent: Some(agent),
            recorded_in_profile: recorded,
        }))
    }

    async fn login_agent(
        &self,
        request: Request<pb::LoginAgentRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        let mut agent = validate_agent(req.agent.as_ref())?;
        if !agent.phone.is_empty() {
            agent.phone = rapport_kit::phone::normalize(&agent.phone, self.region)
                .map_err(|e| FieldError::new("agent.phone", e.to_string()))?
                .as_str()
                .to_owned();
        }
        let groups = agent_groups(&agent);
        let change = self
            .state
            .login(&center, &agent, &groups, req.ready, now_ms())
            .await?;
        tracing::info!(agent_id = %agent.agent_id, center = %center.id(), groups = groups.len(), "agent logged in");
        Ok(Response::new(
            self.agent_state(&center, &agent.agent_id, Some(&change))
                .await?,
        ))
    }

    async fn set_agent_status(
        &self,
        request: Request<pb::SetAgentStatusRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        validate::text("reason", &req.reason, 200)?;
        let target = match validate::enumeration::<pb::AgentStatus>("status", req.status, false)? {
            pb::AgentStatus::Ready => Target::Ready,
            pb::AgentStatus::NotReady => Target::NotReady,
            pb::AgentStatus::LoggedOut => Target::LoggedOut,
            _ => {
                return Err(
                    FieldError::new("status", "must be READY, NOT_READY or LOGGED_OUT").into(),
                );
            }
        };
        let change = self
            .state
            .set_status(&center, &req.agent_id, target, now_ms())
            .await?;
        Ok(Response::new(
            self.agent_state(&center, &req.agent_id, Some(&change))
                .await?,
        ))
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        Ok(Response::new(
            self.agent_state(&center, &req.agent_id, None).await?,
        ))
    }

    async fn heartbeat(
        &self,
        _: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        Err(pending("Heartbeat"))
    }

    type WatchAgentStream = Stream<pb::AgentEvent>;
    async fn watch_agent(
        &self,
        _: Request<pb::WatchAgentRequest>,
    ) -> Result<Response<Self::WatchAgentStream>, Status> {
        Err(pending("WatchAgent"))
    }

    async fn accept_offer(
        &self,
        _: Request<pb::AcceptOfferRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        Err(pending("AcceptOffer"))
    }

    async fn reject_offer(
        &self,
        _: Request<pb::RejectOfferRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        Err(pending("RejectOffer"))
    }

    async fn queue_stats(
        &self,
        _: Request<pb::QueueStatsRequest>,
    ) -> Result<Response<pb::QueueStatsResponse>, Status> {
        Err(pending("QueueStats"))
    }

    async fn route_outbound(
        &self,
        _: Request<pb::RouteOutboundRequest>,
    ) -> Result<Response<pb::RouteDecision>, Status> {
        Err(pending("RouteOutbound"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> pb::AgentProfile {
        pb::AgentProfile {
            agent_id: "a1".into(),
            skills: [("wealth".to_owned(), 9.6)].into_iter().collect(),
            languages: vec!["zh".into(), "zh".into()],
            ..Default::default()
        }
    }

    #[test]
    fn valid_agents_are_normalized() {
        let a = validate_agent(Some(&agent())).expect("valid");
        assert_eq!(a.kind, pb::AgentKind::Desk as i32);
        assert_eq!(a.languages, ["zh"]);
    }

    #[test]
    fn bad_agents_name_the_field() {
        let field = |a: pb::AgentProfile| validate_agent(Some(&a)).unwrap_err().field;
        let mut a = agent();
        a.skills.insert("loans".into(), 10.5);
        assert_eq!(field(a), "agent.skills[loans]");
        let mut a = agent();
        a.skills.insert(String::new(), 5.0);
        assert_eq!(field(a), "agent.skills");
        let mut a = agent();
        a.skills.clear();
        assert_eq!(field(a), "agent.skills");
        let mut a = agent();
        a.kind = 99;
        assert_eq!(field(a), "agent.kind");
        let mut a = agent();
        a.capacity.push(pb::ChannelCapacity { channel: 1, max: 0 });
        assert_eq!(field(a), "agent.capacity[0].max");
        let mut a = agent();
        a.dialects.push("Min Nan".into());
        assert_eq!(field(a), "agent.dialects[0]");
        let mut a = agent();
        a.agent_id = "a b".into();
        assert_eq!(field(a), "agent.agent_id");
        assert_eq!(validate_agent(None).unwrap_err().field, "agent");
    }
}
