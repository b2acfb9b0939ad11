//! The gRPC surface of routing: validates requests, gathers profile and
//! classification, derives requirements, ranks candidates and asks the live
//! state to place the contact; serves the agent desktop (offers, presence)
//! and the IVR's streams, callbacks and queue statistics.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rapport_kit::phone::Region;
use rapport_kit::validate::{self, FieldError};
use rapport_proto as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::deps::{Deps, Resolved};
use crate::groups::{Speech, agent_groups};
use crate::metrics;
use crate::policy::RoutingPolicy;
use crate::ranking::{self, Context};
use crate::requirements::{self, Derived};
use crate::state::{
    AgentSnapshot, CallSnapshot, Center, FieldPlacement, LiveState, NewCall, OfferAnswer,
    Placement, StateError, StatusChange, Target, Visit,
};
use crate::views::{self, agent_ref, agent_state, call_state, millis, screen_pop, timestamp};

/// Limits on agent attributes. They bound the number of requirement groups
/// an agent is indexed under, and so the cost of every status change.
const MAX_SKILLS: usize = 16;
const MAX_POOLS: usize = 4;
const MAX_LANGUAGES: usize = 4;
const MAX_DIALECTS: usize = 4;
const MAX_TEXT: usize = 16 * 1024;
const MAX_NOTES: usize = 2000;
/// Preferred and affinity agents considered besides the top of the index.
const MAX_EXTRA_CANDIDATES: usize = 5;

pub(crate) struct Routing {
    pub(crate) state: LiveState,
    pub(crate) deps: Deps,
    pub(crate) policy: Arc<RoutingPolicy>,
    pub(crate) default_center: String,
    pub(crate) region: Region,
    /// How often the WatchCall / WatchAgent streams look at live state.
    pub(crate) poll: Duration,
    /// RouteCall's total time budget.
    pub(crate) budget: Duration,
    /// Where contacts go when live state is unreachable.
    pub(crate) overflow_target: String,
    /// The outreach scheduler that places accepted callbacks, when
    /// configured.
    pub(crate) outreach: Option<crate::handoff::Outreach>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn priority(tier: i32) -> u32 {
    match pb::ValueTier::try_from(tier) {
        Ok(pb::ValueTier::Vip) => 3,
        Ok(pb::ValueTier::Preferred) => 2,
        _ => 1,
    }
}

fn outcome_label(decision: &pb::RouteDecision) -> &'static str {
    if decision.degraded {
        return "degraded";
    }
    match pb::RouteOutcome::try_from(decision.outcome) {
        Ok(pb::RouteOutcome::Assigned) => "assigned",
        Ok(pb::RouteOutcome::Queued) => "queued",
        Ok(pb::RouteOutcome::CallbackOffered) => "callback",
        Ok(pb::RouteOutcome::Fallback) => "fallback",
        Ok(pb::RouteOutcome::NoAgent) => "no_agent",
        Ok(pb::RouteOutcome::CustomerBusy) => "customer_busy",
        _ => "existing",
    }
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
        Ok(self
            .agent_state_and_profile(center, agent_id, change)
            .await?
            .0)
    }

    /// The agent's public state and its profile (which callers reuse
    /// instead of reading the agent again).
    async fn agent_state_and_profile(
        &self,
        center: &Center,
        agent_id: &str,
        change: Option<&StatusChange>,
    ) -> Result<(pb::AgentState, pb::AgentProfile), Status> {
        let snapshot = self.state.agent(center, agent_id).await?;
        self.agent_state_of(center, snapshot, change).await
    }

    /// [`agent_state_and_profile`](Self::agent_state_and_profile) of an
    /// agent already read (scripts that change an agent reply with it).
    async fn agent_state_of(
        &self,
        center: &Center,
        snapshot: AgentSnapshot,
        change: Option<&StatusChange>,
    ) -> Result<(pb::AgentState, pb::AgentProfile), Status> {
        let assigned = match change.and_then(|c| c.assigned_call.as_deref()) {
            Some(call_id) => {
                let call = self.state.call(center, call_id).await?;
                Some(assigned_from_queue(center, &call, &snapshot.profile))
            }
            None => None,
        };
        Ok((agent_state(&snapshot, assigned), snapshot.profile))
    }

    async fn call_state(
        &self,
        center: &Center,
        call: &CallSnapshot,
    ) -> Result<pb::CallState, Status> {
        self.call_state_known(center, call, None).await
    }

    /// [`call_state`](Self::call_state), given the profile of an agent
    /// already read (used when it is the contact's agent).
    async fn call_state_known(
        &self,
        center: &Center,
        call: &CallSnapshot,
        known: Option<&pb::AgentProfile>,
    ) -> Result<pb::CallState, Status> {
        let agent_id = call.get("agent_id");
        let agent = if agent_id.is_empty() {
            None
        } else if let Some(profile) = known.filter(|p| p.agent_id == agent_id) {
            Some(agent_ref(profile))
        } else {
            match self.state.agent(center, agent_id).await {
                Ok(a) => Some(agent_ref(&a.profile)),
                // The agent may have logged out since; the id still identifies it.
                Err(StateError::NotFound(_)) => Some(pb::AgentRef {
                    agent_id: agent_id.to_owned(),
                    ..Default::default()
                }),
                Err(e) => return Err(e.into()),
            }
        };
        let callback = if call.get("status") == "callback" {
            self.state
                .follow_ups(center, Some("callback"), usize::MAX)
                .await?
                .into_iter()
                .find(|t| t.get("call_id").map(String::as_str) == Some(call.get("call_id")))
                .map(|t| views::follow_up(&t))
        } else {
            None
        };
        Ok(call_state(center, call, agent, callback, now_ms()))
    }

    /// Estimated wait for queue position `position`, from the group's
    /// recent service rate; None without enough evidence.
    async fn ewt(
        &self,
        center: &Center,
        channel: i32,
        group: &str,
        position: u64,
        now: i64,
    ) -> Result<Option<u32>, Status> {
        estimate(
            &self.state,
            &self.policy,
            center,
            channel,
            group,
            position,
            now,
        )
        .await
    }

    fn callback_offer(&self, ewt: u32, patience: u32, now: i64) -> pb::CallbackOffer {
        pb::CallbackOffer {
            estimated_wait_s: ewt,
            patience_s: patience,
            windows: self
                .policy
                .patience
                .callback_windows_min
                .iter()
                .map(|[start, end]| pb::TimeRange {
                    start: timestamp(now + i64::from(*start) * 60_000),
                    end: timestamp(now + i64::from(*end) * 60_000),
                })
                .collect(),
        }
    }

    /// Records a contact that ended without an agent (abandoned, callback)
    /// in the customer's history; failures are logged, not returned.
    async fn record_waiting_contact(
        &self,
        call: &CallSnapshot,
        outcome: pb::ContactOutcome,
        wait_ms: i64,
    ) {
        let customer_id = call.get("customer_id");
        if customer_id.is_empty() {
            return;
        }
        let contact = pb::ContactRecord {
            contact_id: call.get("call_id").to_owned(),
            channel: call.channel(),
            direction: pb::Direction::Inbound as i32,
            started_at: timestamp(call.get_i64("arrived_ms")),
            ivr_selection: call.get("ivr_selection").to_owned(),
            queue_wait_s: (wait_ms.max(0) / 1000) as u32,
            outcome: outcome as i32,
            ..Default::default()
        };
        if let Err(status) = self.deps.record_contact(customer_id, contact).await {
            tracing::warn!(call_id = %call.get("call_id"), code = ?status.code(), "failed to record the contact in profile");
        }
    }
}

/// Estimated wait for queue position `position` from the group's service
/// rate over the window (answered contacts per elapsed time since the first
/// of them, at least 60 s), or None when the group answered fewer than the
/// policy's minimum.
async fn estimate(
    state: &LiveState,
    policy: &RoutingPolicy,
    center: &Center,
    channel: i32,
    group: &str,
    position: u64,
    now: i64,
) -> Result<Option<u32>, Status> {
    let (answered, first_ms) = state.service_rate(center, channel, group, now).await?;
    if answered < u64::from(policy.patience.ewt_min_answered) || answered == 0 {
        return Ok(None);
    }
    let per_position_ms = (now - first_ms).max(60_000) as f64 / answered as f64;
    Ok(Some(
        (position as f64 * per_position_ms / 1000.0).min(f64::from(u32::MAX)) as u32,
    ))
}

/// The decision for a queued contact handed to an agent that turned ready.
fn assigned_from_queue(
    center: &Center,
    call: &CallSnapshot,
    agent: &pb::AgentProfile,
) -> pb::RouteDecision {
    let waited_s = call.get_i64("queue_wait_ms") / 1000;
    pb::RouteDecision {
        call_id: call.get("call_id").to_owned(),
        center_id: center.id().to_owned(),
        outcome: pb::RouteOutcome::Assigned as i32,
        agent: Some(agent_ref(agent)),
        offer_id: call.get("offer_id").to_owned(),
        reasons: vec![format!(
            "longest-waiting eligible contact in {} (waited {waited_s} s), taken when {} turned ready",
            call.get("group"),
            agent.agent_id
        )],
        customer_id: call.get("customer_id").to_owned(),
        requirements: Some(views::requirements(call)),
        ..Default::default()
    }
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

fn channel_field(field: &str, value: i32) -> Result<pb::Channel, FieldError> {
    match validate::enumeration::<pb::Channel>(field, value, true)? {
        pb::Channel::Unspecified => Ok(pb::Channel::Voice),
        pb::Channel::FieldVisit => Err(FieldError::new(field, "FIELD_VISIT is not routed")),
        c => Ok(c),
    }
}

impl Routing {
    fn validate_route(&self, req: &pb::RouteCallRequest) -> Result<RouteInput, FieldError> {
        validate::id("call_id", &req.call_id)?;
        let center = self.center(&req.center_id)?;
        validate::optional_id("customer_id", &req.customer_id)?;
        let phone = if req.caller_phone.is_empty() {
            None
        } else {
            Some(self.phone("caller_phone", &req.caller_phone)?)
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
        let channel = channel_field("channel", req.channel)?;
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

    fn phone(&self, field: &str, value: &str) -> Result<String, FieldError> {
        Ok(rapport_kit::phone::normalize(value, self.region)
            .map_err(|e| FieldError::new(field, e.to_string()))?
            .as_str()
            .to_owned())
    }

    /// Agents the customer prefers (preferred agent) and had good outcomes
    /// with (affinity), from the profile.
    fn preferences(profile: Option<&pb::ProfileView>) -> (Vec<String>, Vec<String>, String) {
        let prefs = profile
            .and_then(|p| p.customer.as_ref())
            .and_then(|c| c.preferences.as_ref());
        let clean = |s: &str| validate::id("agent", s).is_ok().then(|| s.to_owned());
        let preferred: Vec<String> = prefs
            .and_then(|p| clean(&p.preferred_agent_id))
            .into_iter()
            .collect();
        let manager = prefs
            .and_then(|p| clean(&p.dedicated_field_manager_id))
            .unwrap_or_default();
        let affinity: Vec<String> = profile
            .and_then(|p| p.summary.as_ref())
            .map(|s| {
                s.affinity_agent_ids
                    .iter()
                    .filter_map(|a| clean(a))
                    .take(MAX_EXTRA_CANDIDATES)
                    .collect()
            })
            .unwrap_or_default();
        (preferred, affinity, manager)
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
    let mut channels = HashSet::new();
    for (i, cap) in agent.capacity.iter().enumerate() {
        let field = format!("agent.capacity[{i}].channel");
        let channel = validate::enumeration::<pb::Channel>(&field, cap.channel, false)?;
        if channel == pb::Channel::FieldVisit {
            return Err(FieldError::new(field, "FIELD_VISIT has no concurrency"));
        }
        if !channels.insert(cap.channel) {
            return Err(FieldError::new(field, "each channel at most once"));
        }
        if !(1..=50).contains(&cap.max) {
            return Err(FieldError::new(
                format!("agent.capacity[{i}].max"),
                "must be between 1 and 50",
            ));
        }
    }
    validate::text("agent.phone", &agent.phone, 32)?;
    if agent.kind == pb::AgentKind::Field as i32 && agent.phone.is_empty() {
        return Err(FieldError::new(
            "agent.phone",
            "is required for a FIELD agent (reached on their own phone)",
        ));
    }
    Ok(agent)
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn stream_of<T: Send + 'static>(rx: mpsc::Receiver<Result<T, Status>>) -> Stream<T> {
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

impl Routing {
    /// RouteCall's relationship path: straight to the customer's dedicated
    /// field manager when on duty. Returns the decision, or why not.
    async fn try_field_manager(
        &self,
        input: &RouteInput,
        new_call: &NewCall<'_>,
        manager: &str,
        tier: i32,
    ) -> Result<Result<pb::RouteDecision, String>, Status> {
        let now = now_ms();
        let days = i64::from(self.policy.field.visit_within_days);
        let visit = Visit {
            start_ms: now,
            end_ms: now + days * 86_400_000,
            priority: priority(tier),
        };
        let placed = self
            .state
            .place_with_field_manager(&input.center, new_call, manager, &visit, now)
            .await?;
        match placed {
            FieldPlacement::Assigned { offer_id, task_id } => {
                let agent = self.state.agent(&input.center, manager).await?;
                let tasks = self
                    .state
                    .follow_ups(&input.center, Some("visit"), usize::MAX)
                    .await?;
                Ok(Ok(pb::RouteDecision {
                    outcome: pb::RouteOutcome::Assigned as i32,
                    agent: Some(agent_ref(&agent.profile)),
                    offer_id,
                    follow_up: tasks
                        .iter()
                        .find(|t| t.get("task_id") == Some(&task_id))
                        .map(views::follow_up),
                    reasons: vec![
                        format!(
                            "relationship intent {}: straight to dedicated field manager {manager} (on duty), on their phone",
                            input.selection_id
                        ),
                        format!("visit follow-up {task_id} planned within {days} days"),
                    ],
                    ..Default::default()
                }))
            }
            FieldPlacement::Unavailable { reason } => Ok(Err(format!(
                "dedicated field manager {manager} unavailable ({reason}): routed to the desk"
            ))),
            FieldPlacement::Existing { .. } => Ok(Err(String::new())),
        }
    }
}

impl Routing {
    /// A decision the IVR can act on when routing cannot decide: send the
    /// contact to the overflow target.
    fn fallback(&self, center: &Center, call_id: &str, why: &str) -> pb::RouteDecision {
        ::metrics::counter!("rapport_routing_decisions_total", "outcome" => "fallback")
            .increment(1);
        tracing::warn!(call_id = %call_id, center = %center.id(), reason = why, "fallback decision");
        pb::RouteDecision {
            call_id: call_id.to_owned(),
            center_id: center.id().to_owned(),
            outcome: pb::RouteOutcome::Fallback as i32,
            fallback_target: self.overflow_target.clone(),
            degraded: true,
            degraded_reason: why.to_owned(),
            reasons: vec![format!(
                "{why}: sent to overflow target {}",
                self.overflow_target
            )],
            ..Default::default()
        }
    }

    /// RouteCall proper: profile and classification within their share of
    /// the budget, then the reservation or queueing in Redis.
    async fn route_inner(
        &self,
        req: pb::RouteCallRequest,
        input: RouteInput,
    ) -> Result<pb::RouteDecision, Status> {
        let selection = &self.policy.selections[&input.selection_id];
        let channel = input.channel as i32;
        let mut degraded: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();

        // Who is calling. An unknown caller is routed with a default profile.
        // Each dependency gets its share of the budget; a slow one degrades
        // the decision instead of spending the caller's time.
        let profile_share = self.budget.mul_f64(0.4);
        let profile = match tokio::time::timeout(
            profile_share,
            self.deps
                .resolve(input.customer_id.as_deref(), input.phone.as_deref()),
        )
        .await
        .unwrap_or_else(|_| Resolved::Failed("profile timed out".to_owned()))
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
        let classification_share = self.budget.mul_f64(0.3);
        let classify = tokio::time::timeout(
            classification_share,
            self.deps.classify(pb::ClassifyRequest {
                profile: profile.clone(),
                contact: Some(pb::ContactContext {
                    channel,
                    ivr_selection: input.selection_id.clone(),
                    started_at: timestamp(now_ms()),
                }),
                text: req.text.clone(),
                language_hint: req.language_hint.clone(),
            }),
        );
        // While classification runs, read the candidates of the group it
        // most likely gives (`requirements::predict`: the caller's language,
        // no VIP, dialect or risk refinement): when the guess holds, the
        // read costs no time and no second round trip. The list may be a
        // little older, which is harmless: the reservation script re-checks
        // every candidate atomically. (Guessing the selection's bare skill
        // group was never right once classification answered, because its
        // groups always carry the language: every RouteCall read the
        // candidates twice.)
        let (preferred, affinity, manager) = Self::preferences(profile.as_ref());
        let mut extra: Vec<String> = preferred.clone();
        extra.extend(affinity.iter().cloned());
        extra.truncate(MAX_EXTRA_CANDIDATES);
        let base = requirements::predict(
            &self.policy,
            selection,
            profile.as_ref(),
            &req.language_hint,
        );
        let base_key = base.group.to_string();
        let prefetch = async {
            if selection.relationship && !manager.is_empty() {
                return None;
            }
            self.state
                .candidates(
                    &input.center,
                    channel,
                    &base_key,
                    base.min_score,
                    self.policy.max_candidates,
                    &extra,
                )
                .await
                .ok()
        };
        let (classified, prefetched) = tokio::join!(classify, prefetch);
        let classification =
            match classified.unwrap_or_else(|_| Err("classification timed out".to_owned())) {
                Ok(c) => Some(c),
                Err(reason) => {
                    degraded.push(reason);
                    None
                }
            };

        let derived = requirements::derive(&self.policy, selection, classification.as_ref());
        let Derived {
            group,
            min_score,
            label,
            reasons: requirement_reasons,
            ..
        } = &derived;
        let group_key = group.to_string();
        let tier = classification.as_ref().map(|c| c.tier).unwrap_or_default();
        let patience_s = classification.as_ref().map(|c| c.patience_s).unwrap_or(0);
        let mut pop = screen_pop(profile.as_ref(), classification.as_ref());
        if let Some(campaign) = &req.campaign
            && !campaign.title.is_empty()
        {
            pop.recent_campaigns
                .insert(0, format!("just received: {}", campaign.title));
        }

        let mut stored_reasons = requirement_reasons.clone();
        if let Some(c) = &classification {
            stored_reasons.push(c.tier_reason.clone());
            stored_reasons.push(c.patience_reason.clone());
        }
        stored_reasons.retain(|r| !r.is_empty());
        let steps: Vec<(String, f64, u64)> = derived
            .steps
            .iter()
            .map(|s| {
                (
                    s.group.to_string(),
                    s.min_score,
                    u64::from(s.after_s) * 1000,
                )
            })
            .collect();
        let flag = |b: bool| if b { b"1".to_vec() } else { b"0".to_vec() };
        let new_call = NewCall {
            call_id: &input.call_id,
            channel,
            group: &group_key,
            min_score: *min_score,
            steps,
            fields: vec![
                ("customer_id", customer_id.clone().into_bytes()),
                ("ivr_selection", input.selection_id.clone().into_bytes()),
                ("skill", group.skill.clone().into_bytes()),
                ("channel", channel.to_string().into_bytes()),
                ("tier", tier.to_string().into_bytes()),
                ("patience_s", patience_s.to_string().into_bytes()),
                ("empathy_need", flag(derived.empathy_need.is_some())),
                (
                    "de_escalation_need",
                    flag(derived.de_escalation_need.is_some()),
                ),
                (
                    "phone",
                    input.phone.clone().unwrap_or_default().into_bytes(),
                ),
                ("direction", b"inbound".to_vec()),
                ("reasons", stored_reasons.join("\n").into_bytes()),
                ("pop", pop.encode_to_vec()),
            ],
        };

        let mut decision = pb::RouteDecision {
            call_id: input.call_id.clone(),
            center_id: input.center.id().to_owned(),
            customer_id: customer_id.clone(),
            requirements: Some(pb::Requirements {
                skill: group.skill.clone(),
                min_score: *min_score,
                pool: group.pool.clone().unwrap_or_default(),
                language: match &group.speech {
                    Some(Speech::Language(l)) => l.clone(),
                    _ => derived.language.clone().unwrap_or_default(),
                },
                dialect: match &group.speech {
                    Some(Speech::Dialect(d)) => d.clone(),
                    _ => String::new(),
                },
                group: group_key.clone(),
                empathy_needed: derived.empathy_need.is_some(),
                de_escalation_needed: derived.de_escalation_need.is_some(),
                widening: derived
                    .steps
                    .iter()
                    .map(|s| pb::WideningStep {
                        after_s: s.after_s,
                        group: s.group.to_string(),
                        min_score: s.min_score,
                        description: s.description.clone(),
                    })
                    .collect(),
                step: 0,
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
        // Relationship intents go straight to the dedicated field manager.
        let mut routed = false;
        if selection.relationship && !manager.is_empty() {
            match self
                .try_field_manager(&input, &new_call, &manager, tier)
                .await?
            {
                Ok(field) => {
                    decision.outcome = field.outcome;
                    decision.agent = field.agent;
                    decision.offer_id = field.offer_id;
                    decision.follow_up = field.follow_up;
                    reasons.extend(field.reasons);
                    routed = true;
                }
                Err(why) if !why.is_empty() => reasons.push(why),
                Err(_) => {}
            }
        } else if selection.relationship {
            notes.push(format!(
                "relationship intent {}: no dedicated field manager on record",
                input.selection_id
            ));
        }

        if !routed {
            let candidates = match prefetched {
                Some(c) if group_key == base_key && *min_score == base.min_score => c,
                _ => {
                    self.state
                        .candidates(
                            &input.center,
                            channel,
                            &group_key,
                            *min_score,
                            self.policy.max_candidates,
                            &extra,
                        )
                        .await?
                }
            };
            let ctx = Context {
                skill: group.skill.clone(),
                dialect: derived.dialect.clone(),
                language: derived.language.clone(),
                dialect_required: group.dialect().is_some(),
                language_required: group.language().is_some(),
                empathy_need: derived.empathy_need.clone(),
                de_escalation_need: derived.de_escalation_need.clone(),
                preferred: preferred.clone(),
                affinity: affinity.clone(),
                now_ms: now_ms(),
            };
            let ranked = ranking::rank(candidates.list, &ctx, &self.policy.ranking);
            let ranked_ids: Vec<String> = ranked
                .iter()
                .map(|r| r.candidate.agent_id.clone())
                .collect();
            let now = now_ms();
            let (placement, profile) = self
                .state
                .place_detailed(&input.center, &new_call, &ranked_ids, true, now)
                .await?;
            match placement {
                Placement::Assigned {
                    agent_id,
                    ranked: from_ranking,
                    offer_id,
                } => {
                    // The script returned the agent's profile with the
                    // reservation: no second read.
                    let agent = profile.unwrap_or_default();
                    decision.outcome = pb::RouteOutcome::Assigned as i32;
                    decision.agent = Some(agent_ref(&agent));
                    decision.offer_id = offer_id;
                    match ranked.iter().find(|r| r.candidate.agent_id == agent_id) {
                        Some(chosen) if from_ranking => reasons.extend(ranking::reasons(
                            chosen,
                            &ranked,
                            &ctx,
                            candidates.eligible,
                            label,
                        )),
                        _ => {
                            let score = agent.skills.get(&group.skill).copied().unwrap_or(0.0);
                            reasons.push(format!(
                                "{} skill {score:.1}: best free {label} agent at reservation time",
                                group.skill
                            ));
                        }
                    }
                }
                Placement::Queued { position } => {
                    let ewt = self
                        .ewt(&input.center, channel, &group_key, position, now)
                        .await?;
                    decision.queue_position = position as u32;
                    decision.estimated_wait_s = ewt.unwrap_or(0);
                    reasons.push(format!(
                        "no free {label} agent with {} ≥ {min_score:.1}; queued at position {position} in {group_key}, {}",
                        group.skill,
                        match ewt {
                            Some(s) => format!("estimated wait {s} s from the recent service rate"),
                            None => "wait not estimated (too few answers in the window)".to_owned(),
                        }
                    ));
                    if let Some(ewt) = ewt.filter(|e| patience_s > 0 && *e > patience_s) {
                        decision.outcome = pb::RouteOutcome::CallbackOffered as i32;
                        decision.callback = Some(self.callback_offer(ewt, patience_s, now));
                        reasons.push(format!(
                            "estimated wait {ewt} s exceeds patience {patience_s} s: callback offered (the caller keeps the place while deciding)"
                        ));
                        metrics::callback_offered();
                    } else {
                        decision.outcome = pb::RouteOutcome::Queued as i32;
                    }
                    if let Some(first) = derived.steps.first() {
                        reasons.push(format!("widening {}", first.description));
                    }
                }
                Placement::NoAgent | Placement::CustomerBusy { .. } => {
                    return Err(Status::internal(
                        "live state refused an inbound route it must place",
                    ));
                }
                Placement::Existing { .. } => {
                    routed = true;
                }
            }
        }
        if routed && decision.outcome == pb::RouteOutcome::Unspecified as i32 {
            // A retried call id: report the contact's current state.
            let call = self.state.call(&input.center, &input.call_id).await?;
            let state = self.call_state(&input.center, &call).await?;
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
            decision.offer_id = state.offer_id;
            reasons.push("call id already routed: current state returned".to_owned());
        }
        reasons.extend(stored_reasons);
        reasons.extend(notes);
        if decision.degraded {
            reasons.push(format!("degraded: {}", decision.degraded_reason));
        }
        reasons.retain(|r| !r.is_empty());
        decision.reasons = reasons;
        decision.screen_pop = Some(pop);
        metrics::decision(outcome_label(&decision));

        tracing::info!(
            call_id = %decision.call_id,
            center = %decision.center_id,
            outcome = ?pb::RouteOutcome::try_from(decision.outcome).unwrap_or_default(),
            agent_id = decision.agent.as_ref().map(|a| a.agent_id.as_str()).unwrap_or(""),
            group = %group_key,
            degraded = decision.degraded,
            "routed"
        );
        Ok(decision)
    }
}

#[tonic::async_trait]
impl pb::routing_service_server::RoutingService for Routing {
    async fn route_call(
        &self,
        request: Request<pb::RouteCallRequest>,
    ) -> Result<Response<pb::RouteDecision>, Status> {
        let req = request.into_inner();
        // Bad input is the IVR's bug and is refused as such; everything
        // else gets an answer the IVR can act on, within the budget.
        let input = self.validate_route(&req)?;
        let center = input.center.clone();
        let call_id = input.call_id.clone();
        match tokio::time::timeout(self.budget, self.route_inner(req, input)).await {
            Ok(Ok(decision)) => Ok(Response::new(decision)),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => Ok(Response::new(
                self.fallback(&center, &call_id, "live agent state unavailable"),
            )),
            Ok(Err(status)) => Err(status),
            Err(_) => {
                // The decision may still have reserved an agent or queued
                // the contact; withdraw it so nobody is offered a caller the
                // IVR has sent elsewhere.
                let state = self.state.clone();
                let withdraw = (center.clone(), call_id.clone());
                tokio::spawn(async move {
                    let (center, call_id) = withdraw;
                    match state.abandon(&center, &call_id, now_ms()).await {
                        Ok(_) | Err(crate::state::StateError::NotFound(_)) => {}
                        Err(e) => {
                            tracing::warn!(call_id = %call_id, error = %e, "failed to withdraw a timed-out contact")
                        }
                    }
                });
                let reason = format!("routing budget of {} ms exceeded", self.budget.as_millis());
                Ok(Response::new(self.fallback(&center, &call_id, &reason)))
            }
        }
    }
    async fn get_call(
        &self,
        request: Request<pb::GetCallRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        let call = self.state.call(&center, &req.call_id).await?;
        Ok(Response::new(self.call_state(&center, &call).await?))
    }

    type WatchCallStream = Stream<pb::CallUpdate>;
    async fn watch_call(
        &self,
        request: Request<pb::WatchCallRequest>,
    ) -> Result<Response<Self::WatchCallStream>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        // Unknown calls fail the RPC itself, not the stream.
        self.state.call(&center, &req.call_id).await?;
        let (tx, rx) = mpsc::channel(16);
        let this = self.watcher();
        tokio::spawn(async move {
            let mut last: Option<pb::CallUpdate> = None;
            loop {
                let update = match this.call_update(&center, &req.call_id).await {
                    Ok(u) => u,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let terminal = matches!(
                    pb::CallStatus::try_from(update.state.as_ref().map(|s| s.status).unwrap_or(0)),
                    Ok(pb::CallStatus::Completed
                        | pb::CallStatus::Abandoned
                        | pb::CallStatus::Callback)
                );
                let changed = last.as_ref().is_none_or(|l| {
                    let key = |u: &pb::CallUpdate| {
                        let s = u.state.clone().unwrap_or_default();
                        (
                            s.status,
                            s.queue_position,
                            s.agent.map(|a| a.agent_id),
                            s.offer_id,
                            u.estimated_wait_s,
                            s.requirements.map(|r| r.step),
                        )
                    };
                    key(l) != key(&update)
                });
                if changed {
                    if tx.send(Ok(update.clone())).await.is_err() {
                        return;
                    }
                    last = Some(update);
                }
                if terminal {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(this.poll) => {}
                }
            }
        });
        Ok(Response::new(stream_of(rx)))
    }

    async fn abandon_call(
        &self,
        request: Request<pb::AbandonCallRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        let (already, wait_ms) = self.state.abandon(&center, &req.call_id, now_ms()).await?;
        let call = self.state.call(&center, &req.call_id).await?;
        if !already {
            // The wait before hanging up feeds patience learning.
            self.record_waiting_contact(&call, pb::ContactOutcome::Abandoned, wait_ms)
                .await;
        }
        Ok(Response::new(self.call_state(&center, &call).await?))
    }

    async fn accept_callback(
        &self,
        request: Request<pb::AcceptCallbackRequest>,
    ) -> Result<Response<pb::CallState>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("call_id", &req.call_id)?;
        let now = now_ms();
        let window = req
            .window
            .as_ref()
            .ok_or_else(|| FieldError::new("window", "is required"))?;
        let (Some(start), Some(end)) = (window.start.as_ref(), window.end.as_ref()) else {
            return Err(FieldError::new("window", "needs a start and an end").into());
        };
        let (start, end) = (millis(start), millis(end));
        if start >= end {
            return Err(FieldError::new("window.end", "must be after window.start").into());
        }
        if start < now - 60_000 || end > now + 7 * 86_400_000 {
            return Err(FieldError::new("window", "must lie between now and 7 days ahead").into());
        }
        let phone = if req.phone.is_empty() {
            None
        } else {
            Some(self.phone("phone", &req.phone)?)
        };
        let call = self.state.call(&center, &req.call_id).await?;
        let phone = phone.unwrap_or_else(|| call.get("phone").to_owned());
        let tier: i32 = call.get("tier").parse().unwrap_or(0);
        let (already, task) = self
            .state
            .accept_callback(
                &center,
                &req.call_id,
                (start, end),
                priority(tier),
                &phone,
                self.outreach.is_some(),
                now,
            )
            .await?;
        let call = self.state.call(&center, &req.call_id).await?;
        if !already {
            metrics::callback_accepted();
            tracing::info!(call_id = %req.call_id, task_id = %task, "callback accepted");
            // Hand it to outreach now; if that fails, the hand-over loop
            // retries it (the task waits in the center's hand-over set).
            if let Some(outreach) = &self.outreach
                && let Ok(Some(t)) = self.state.follow_up(&center, &task).await
                && let Err(e) = outreach.hand_over(&self.state, &center, &t, now).await
            {
                tracing::warn!(error = %e, task_id = %task, "recording the callback hand-over failed; it will be retried");
            }
            self.record_waiting_contact(
                &call,
                pb::ContactOutcome::Callback,
                call.get_i64("queue_wait_ms"),
            )
            .await;
        }
        Ok(Response::new(self.call_state(&center, &call).await?))
    }

    async fn complete_call(
        &self,
        request: Request<pb::CompleteCallRequest>,
    ) -> Result<Response<pb::CompleteCallResponse>, Status> {
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
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
            .complete(
                &center,
                &req.call_id,
                &req.agent_id,
                req.csat,
                req.wrap_up,
                now_ms(),
            )
            .await?;
        for (name, value) in &completion.learned {
            tracing::info!(agent_id = %req.agent_id, call_id = %req.call_id, trait_name = %name, value, "trait learned from CSAT");
        }
        let call = self.state.call(&center, &req.call_id).await?;

        // The profile record is written once, by the completion that
        // actually released the agent.
        let customer_id = call.get("customer_id").to_owned();
        let record = async {
            if completion.already_completed || customer_id.is_empty() {
                return false;
            }
            let contact = pb::ContactRecord {
                contact_id: req.call_id.clone(),
                channel: call.channel(),
                direction: if call.get("direction") == "outbound" {
                    pb::Direction::Outbound
                } else {
                    pb::Direction::Inbound
                } as i32,
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
                Ok(()) => true,
                Err(status) => {
                    tracing::warn!(
                        call_id = %req.call_id,
                        code = ?status.code(),
                        message = status.message(),
                        "failed to record the contact in profile"
                    );
                    false
                }
            }
        };
        // The reply's states do not depend on the profile write: build them
        // while profile commits. The agent as the completion left it also
        // serves the contact's agent reference.
        let states = async {
            let (agent, profile) = self
                .agent_state_of(
                    &center,
                    completion.snapshot.clone(),
                    Some(&completion.agent),
                )
                .await?;
            let call = self
                .call_state_known(&center, &call, Some(&profile))
                .await?;
            Ok::<_, Status>((agent, call))
        };
        let (recorded, states) = tokio::join!(record, states);
        let (agent, call) = states?;
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
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(
            caller.as_ref(),
            req.agent
                .as_ref()
                .map(|a| a.agent_id.as_str())
                .unwrap_or(""),
        )?;
        let center = self.center(&req.center_id)?;
        let mut agent = validate_agent(req.agent.as_ref())?;
        if !agent.phone.is_empty() {
            agent.phone = self.phone("agent.phone", &agent.phone)?;
        }
        let groups = agent_groups(&agent, &self.policy.needs.risk_pool);
        let capacity: Vec<(i32, u32)> = if agent.capacity.is_empty() {
            if agent.kind == pb::AgentKind::Field as i32 {
                vec![(pb::Channel::Voice as i32, 1)]
            } else {
                self.policy.capacity.defaults()
            }
        } else {
            agent.capacity.iter().map(|c| (c.channel, c.max)).collect()
        };
        let change = self
            .state
            .login(&center, &agent, &groups, &capacity, req.ready, now_ms())
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
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
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
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        Ok(Response::new(
            self.agent_state(&center, &req.agent_id, None).await?,
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        let ttl = Duration::from_secs(self.policy.field.presence_ttl_s);
        let until = self
            .state
            .heartbeat(&center, &req.agent_id, ttl, now_ms())
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            on_duty_until: timestamp(until),
        }))
    }

    type WatchAgentStream = Stream<pb::AgentEvent>;
    async fn watch_agent(
        &self,
        request: Request<pb::WatchAgentRequest>,
    ) -> Result<Response<Self::WatchAgentStream>, Status> {
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        self.state.agent(&center, &req.agent_id).await?;
        let (tx, rx) = mpsc::channel(16);
        let this = self.watcher();
        tokio::spawn(async move {
            // Offers already sent, so each is delivered once and withdrawn
            // once it is no longer pending.
            let mut sent: HashSet<String> = HashSet::new();
            let mut last_state: Option<pb::AgentState> = None;
            loop {
                let events = match this
                    .agent_events(&center, &req.agent_id, &mut sent, &mut last_state)
                    .await
                {
                    Ok(e) => e,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(this.poll) => {}
                }
            }
        });
        Ok(Response::new(stream_of(rx)))
    }

    async fn accept_offer(
        &self,
        request: Request<pb::AcceptOfferRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        validate::id("offer_id", &req.offer_id)?;
        let (_, agent) = self
            .state
            .answer_offer_viewed(&center, &req.agent_id, &req.offer_id, true, now_ms())
            .await?;
        Ok(Response::new(agent_state(&agent, None)))
    }

    async fn reject_offer(
        &self,
        request: Request<pb::RejectOfferRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        // An agent desktop acts only for its own agent.
        let caller = rapport_kit::security::caller(&request);
        let req = request.into_inner();
        rapport_kit::security::require_agent(caller.as_ref(), &req.agent_id)?;
        let center = self.center(&req.center_id)?;
        validate::id("agent_id", &req.agent_id)?;
        validate::id("offer_id", &req.offer_id)?;
        validate::text("reason", &req.reason, 200)?;
        let (answer, agent) = self
            .state
            .answer_offer_viewed(&center, &req.agent_id, &req.offer_id, false, now_ms())
            .await?;
        if let OfferAnswer::Rejected { reoffered_to } = &answer {
            tracing::info!(agent_id = %req.agent_id, offer_id = %req.offer_id, reoffered_to = reoffered_to.as_deref().unwrap_or(""), "offer rejected");
        }
        Ok(Response::new(agent_state(&agent, None)))
    }

    async fn queue_stats(
        &self,
        request: Request<pb::QueueStatsRequest>,
    ) -> Result<Response<pb::QueueStatsResponse>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        let now = now_ms();
        let stats = self.state.stats(&center, now).await?;
        metrics::queue_gauges(&stats, now);
        Ok(Response::new(stats_to_pb(&stats, &self.policy, now)))
    }

    async fn route_outbound(
        &self,
        request: Request<pb::RouteOutboundRequest>,
    ) -> Result<Response<pb::RouteDecision>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        validate::id("task_id", &req.task_id)?;
        validate::optional_id("customer_id", &req.customer_id)?;
        validate::name("skill", &req.skill)?;
        let channel = channel_field("channel", req.channel)? as i32;
        validate::optional_id("preferred_agent_id", &req.preferred_agent_id)?;

        let mut notes = Vec::new();
        let profile = if req.customer_id.is_empty() {
            None
        } else {
            match self.deps.resolve(Some(&req.customer_id), None).await {
                Resolved::Found(view) => Some(*view),
                Resolved::Unknown => {
                    return Err(Status::not_found(format!(
                        "customer {} is unknown",
                        req.customer_id
                    )));
                }
                Resolved::Failed(reason) => {
                    notes.push(format!(
                        "degraded: {reason}; no preferred agent from the profile"
                    ));
                    None
                }
            }
        };
        let (mut preferred, affinity, _) = Self::preferences(profile.as_ref());
        if !req.preferred_agent_id.is_empty() {
            preferred.insert(0, req.preferred_agent_id.clone());
        }
        let group = req.skill.clone();
        let candidates = self
            .state
            .candidates(
                &center,
                channel,
                &group,
                0.0,
                self.policy.max_candidates,
                &preferred,
            )
            .await?;
        let ctx = Context {
            skill: req.skill.clone(),
            preferred: preferred.clone(),
            affinity,
            now_ms: now_ms(),
            ..Default::default()
        };
        let ranked = ranking::rank(candidates.list, &ctx, &self.policy.ranking);
        let ids: Vec<String> = ranked
            .iter()
            .map(|r| r.candidate.agent_id.clone())
            .collect();
        let new_call = NewCall {
            call_id: &req.task_id,
            channel,
            group: &group,
            min_score: 0.0,
            steps: Vec::new(),
            fields: vec![
                ("customer_id", req.customer_id.clone().into_bytes()),
                ("skill", req.skill.clone().into_bytes()),
                ("channel", channel.to_string().into_bytes()),
                ("direction", b"outbound".to_vec()),
                ("reasons", b"outbound care call".to_vec()),
                ("pop", screen_pop(profile.as_ref(), None).encode_to_vec()),
            ],
        };
        let (placement, agent_profile) = self
            .state
            .place_detailed(&center, &new_call, &ids, false, now_ms())
            .await?;
        let mut decision = pb::RouteDecision {
            call_id: req.task_id.clone(),
            center_id: center.id().to_owned(),
            customer_id: req.customer_id.clone(),
            requirements: Some(pb::Requirements {
                skill: req.skill.clone(),
                group: group.clone(),
                ..Default::default()
            }),
            screen_pop: Some(screen_pop(profile.as_ref(), None)),
            ..Default::default()
        };
        let mut reasons = Vec::new();
        match placement {
            Placement::Assigned {
                agent_id, offer_id, ..
            } => {
                let agent = agent_profile.unwrap_or_default();
                decision.outcome = pb::RouteOutcome::Assigned as i32;
                decision.agent = Some(agent_ref(&agent));
                decision.offer_id = offer_id;
                if preferred.first() == Some(&agent_id) {
                    reasons.push(format!(
                        "{agent_id} is the customer's preferred agent and is free"
                    ));
                } else if !preferred.is_empty() {
                    reasons.push(format!("preferred agent {} is not free", preferred[0]));
                }
                if let Some(chosen) = ranked.iter().find(|r| r.candidate.agent_id == agent_id) {
                    reasons.extend(ranking::reasons(
                        chosen,
                        &ranked,
                        &ctx,
                        candidates.eligible,
                        &req.skill,
                    ));
                }
            }
            Placement::NoAgent => {
                decision.outcome = pb::RouteOutcome::NoAgent as i32;
                reasons.push(format!(
                    "no free agent with skill {}; nothing reserved",
                    req.skill
                ));
            }
            Placement::CustomerBusy { call_id } => {
                decision.outcome = pb::RouteOutcome::CustomerBusy as i32;
                reasons.push(format!(
                    "customer {} is in live inbound contact {call_id}; nothing reserved",
                    req.customer_id
                ));
            }
            Placement::Existing { .. } => {
                let call = self.state.call(&center, &req.task_id).await?;
                let state = self.call_state(&center, &call).await?;
                decision.outcome = match pb::CallStatus::try_from(state.status) {
                    Ok(pb::CallStatus::Offered | pb::CallStatus::Connected) => {
                        pb::RouteOutcome::Assigned
                    }
                    _ => pb::RouteOutcome::Unspecified,
                } as i32;
                decision.agent = state.agent;
                decision.offer_id = state.offer_id;
                reasons.push("task id already routed: current state returned".to_owned());
            }
            Placement::Queued { .. } => {
                return Err(Status::internal("live state queued an outbound call"));
            }
        }
        reasons.extend(notes);
        decision.reasons = reasons;
        Ok(Response::new(decision))
    }

    async fn list_follow_ups(
        &self,
        request: Request<pb::ListFollowUpsRequest>,
    ) -> Result<Response<pb::ListFollowUpsResponse>, Status> {
        let req = request.into_inner();
        let center = self.center(&req.center_id)?;
        let kind = match req.kind.as_str() {
            "" => None,
            "callback" | "visit" => Some(req.kind.as_str()),
            _ => return Err(FieldError::new("kind", "must be callback, visit or empty").into()),
        };
        if req.limit > 1000 {
            return Err(FieldError::new("limit", "must be at most 1000").into());
        }
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit as usize
        };
        let tasks = self.state.follow_ups(&center, kind, limit).await?;
        Ok(Response::new(pb::ListFollowUpsResponse {
            tasks: tasks.iter().map(views::follow_up).collect(),
        }))
    }
}

/// Service level per group: answered within the threshold over answered +
/// abandoned in the window (1.0 when nothing happened).
pub(crate) fn stats_to_pb(
    stats: &crate::state::Stats,
    policy: &RoutingPolicy,
    now: i64,
) -> pb::QueueStatsResponse {
    pb::QueueStatsResponse {
        ready_agents: stats.ready_agents as u32,
        groups: stats
            .groups
            .iter()
            .map(|g| {
                let total = g.answered + g.abandoned;
                pb::QueueGroupStats {
                    group: g.group.clone(),
                    channel: g.channel,
                    waiting: g.waiting as u32,
                    oldest_wait_s: if g.waiting > 0 {
                        ((now - g.oldest_arrival_ms).max(0) / 1000) as u32
                    } else {
                        0
                    },
                    ready_agents: g.ready as u32,
                    service_level: if total == 0 {
                        1.0
                    } else {
                        g.answered_fast as f64 / total as f64
                    },
                    service_level_threshold_s: policy.patience.service_level_threshold_s,
                    answered: g.answered as u32,
                    abandoned: g.abandoned as u32,
                }
            })
            .collect(),
    }
}

/// What the streaming RPCs need, cloned into their tasks.
#[derive(Clone)]
pub(crate) struct Watcher {
    state: LiveState,
    policy: Arc<RoutingPolicy>,
    poll: Duration,
}

impl Routing {
    fn watcher(&self) -> Watcher {
        Watcher {
            state: self.state.clone(),
            policy: self.policy.clone(),
            poll: self.poll,
        }
    }
}

impl Watcher {
    async fn call_update(&self, center: &Center, call_id: &str) -> Result<pb::CallUpdate, Status> {
        let call = self.state.call(center, call_id).await?;
        let agent_id = call.get("agent_id");
        let agent = if agent_id.is_empty() {
            None
        } else {
            self.state
                .agent(center, agent_id)
                .await
                .ok()
                .map(|a| agent_ref(&a.profile))
        };
        let callback = if call.get("status") == "callback" {
            self.state
                .follow_ups(center, Some("callback"), usize::MAX)
                .await?
                .into_iter()
                .find(|t| t.get("call_id").map(String::as_str) == Some(call_id))
                .map(|t| views::follow_up(&t))
        } else {
            None
        };
        let now = now_ms();
        let state = call_state(center, &call, agent, callback, now);
        let mut update = pb::CallUpdate {
            estimated_wait_s: 0,
            callback: None,
            state: None,
        };
        if let Some(position) = call.queue_position {
            let ewt = estimate(
                &self.state,
                &self.policy,
                center,
                call.channel(),
                call.get("group"),
                position,
                now,
            )
            .await?;
            update.estimated_wait_s = ewt.unwrap_or(0);
            let patience: u32 = call.get("patience_s").parse().unwrap_or(0);
            if patience > 0 && update.estimated_wait_s > patience {
                update.callback = Some(pb::CallbackOffer {
                    estimated_wait_s: update.estimated_wait_s,
                    patience_s: patience,
                    windows: self
                        .policy
                        .patience
                        .callback_windows_min
                        .iter()
                        .map(|[s, e]| pb::TimeRange {
                            start: timestamp(now + i64::from(*s) * 60_000),
                            end: timestamp(now + i64::from(*e) * 60_000),
                        })
                        .collect(),
                });
            }
        }
        update.state = Some(state);
        Ok(update)
    }

    async fn agent_events(
        &self,
        center: &Center,
        agent_id: &str,
        sent: &mut HashSet<String>,
        last_state: &mut Option<pb::AgentState>,
    ) -> Result<Vec<pb::AgentEvent>, Status> {
        let snapshot = self.state.agent(center, agent_id).await?;
        let state = agent_state(&snapshot, None);
        let mut events = Vec::new();
        let pending: HashSet<String> = snapshot
            .held
            .iter()
            .filter(|h| h.status == "offered")
            .map(|h| h.offer_id.clone())
            .collect();
        let connected: HashSet<String> = snapshot
            .held
            .iter()
            .filter(|h| h.status == "connected")
            .map(|h| h.offer_id.clone())
            .collect();
        for held in snapshot.held.iter().filter(|h| h.status == "offered") {
            if sent.contains(&held.offer_id) {
                continue;
            }
            let call = self.state.call(center, &held.call_id).await?;
            let pop = self.state.call_blob(center, &held.call_id, "pop").await?;
            events.push(pb::AgentEvent {
                state: Some(state.clone()),
                offer: Some(views::offer(&call, held, pop.as_deref())),
                offer_withdrawn_id: String::new(),
            });
            sent.insert(held.offer_id.clone());
        }
        let gone: Vec<String> = sent
            .iter()
            .filter(|o| !pending.contains(*o))
            .cloned()
            .collect();
        for offer_id in gone {
            sent.remove(&offer_id);
            if !connected.contains(&offer_id) {
                events.push(pb::AgentEvent {
                    state: Some(state.clone()),
                    offer: None,
                    offer_withdrawn_id: offer_id,
                });
            }
        }
        let state_changed = last_state.as_ref().is_none_or(|l| {
            (l.status, &l.call_ids, l.missed_offers)
                != (state.status, &state.call_ids, state.missed_offers)
        });
        if events.is_empty() && state_changed {
            events.push(pb::AgentEvent {
                state: Some(state.clone()),
                offer: None,
                offer_withdrawn_id: String::new(),
            });
        }
        *last_state = Some(state);
        Ok(events)
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
        let mut a = agent();
        a.capacity = vec![
            pb::ChannelCapacity { channel: 2, max: 3 },
            pb::ChannelCapacity { channel: 2, max: 1 },
        ];
        assert_eq!(field(a), "agent.capacity[1].channel");
        let mut a = agent();
        a.capacity.push(pb::ChannelCapacity {
            channel: 2,
            max: 51,
        });
        assert_eq!(field(a), "agent.capacity[0].max");
        let mut a = agent();
        a.kind = pb::AgentKind::Field as i32;
        assert_eq!(field(a), "agent.phone", "a field manager needs a phone");
        let mut a = agent();
        a.traits = Some(pb::AgentTraits {
            empathy: -1.0,
            de_escalation: 5.0,
        });
        assert_eq!(field(a), "agent.traits.empathy");
    }
}
