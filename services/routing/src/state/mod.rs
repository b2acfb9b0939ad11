//! Live agent and contact state in Redis.
//!
//! This is the only module that writes routing keys. Every state change is
//! one Lua script (`lua/`, sharing `prelude.lua`), so it is atomic: an agent
//! is reserved only if it is still free at that instant, which is what makes
//! double booking impossible even with many routing replicas. All keys of a
//! center carry its hash tag (`rapport:{<center>}:…`), so the scripts also
//! run on Redis Cluster. Time is an argument of every script (`now_ms`), so
//! tests drive expiry and widening with an injected clock.
//!
//! Keys, for center `cc` (see ARCHITECTURE.md for the full table):
//! - `agent:<id>` hash: encoded profile, presence, capacities and loads per
//!   channel, learned traits, missed offers, presence deadline.
//! - `agent:<id>:groups` hash: requirement group → skill score.
//! - `agent:<id>:calls` hash: contacts held → channel.
//! - `idle:<ch>:<group>` sorted set: agents free on the channel, by skill.
//! - `queue:<ch>:<group>` sorted set: waiting contacts by arrival.
//! - `call:<id>` hash: one contact's live state (expires).
//! - `due` sorted set: timers (offer expiry, widening, retry, wrap-up).
//! - `history` stream: every reserve and release.
//! - `task:<id>` hash and `tasks` sorted set: callbacks and visits.
//! - `customer:<id>:live` set: the customer's live inbound contacts, so
//!   RouteOutbound answers CUSTOMER_BUSY (expires after `busy_ttl_s`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prost::Message as _;
use rapport_proto::{AgentProfile, AgentTraits};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script, ScriptInvocation};
use tracing::Instrument as _;

use crate::ranking::Candidate;

/// A failure of a live-state operation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("redis unavailable")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected live state: {0}")]
    Corrupt(String),
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{}", include_str!("lua/prelude.lua"), body))
}

static LOGIN: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/login.lua")));
static SET_STATUS: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/set_status.lua")));
static ROUTE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/route.lua")));
static ROUTE_FIELD: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/route_field.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/complete.lua")));
static CANDIDATES: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/candidates.lua")));
static OFFER: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/offer.lua")));
static ABANDON: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/abandon.lua")));
static CALLBACK: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/callback.lua")));
static HANDOFF: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/handoff.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/heartbeat.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/sweep.lua")));
static AGENT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/agent.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/stats.lua")));
// No prelude: its only key is the global registry, outside any center.
static REGISTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/register.lua")));

/// The global list of centers the sweepers walk.
const CENTERS_KEY: &str = "rapport:centers";

/// The keys of one contact center. Built only from validated ids.
#[derive(Debug, Clone)]
pub struct Center {
    id: String,
    prefix: String,
}

/// What became of handing a follow-up task to the outreach scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff<'a> {
    /// Outreach has it.
    Done,
    /// Outreach was unreachable; try again at this time (ms).
    RetryAt(i64),
    /// Outreach refused it for good, for this reason.
    Failed(&'a str),
}

impl Center {
    /// `id` must already be validated (see `rapport_kit::validate::id`).
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            prefix: format!("rapport:{{{id}}}:"),
        }
    }
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The prefix every key of the center starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    fn idle(&self, channel: i32, group: &str) -> String {
        format!("{}idle:{channel}:{group}", self.prefix)
    }
    fn queue(&self, channel: i32, group: &str) -> String {
        format!("{}queue:{channel}:{group}", self.prefix)
    }
    fn call(&self, id: &str) -> String {
        format!("{}call:{id}", self.prefix)
    }
    fn answered(&self, channel: i32, group: &str) -> String {
        format!("{}sl:{channel}:{group}:answered", self.prefix)
    }
    fn task(&self, id: &str) -> String {
        format!("{}task:{id}", self.prefix)
    }
    /// The reservation history stream.
    pub fn history(&self) -> String {
        format!("{}history", self.prefix)
    }
}

/// Four hours: longer than any live contact, short enough that a lost
/// completion does not keep outreach from a customer for long.
pub const DEFAULT_BUSY_TTL_S: u64 = 4 * 3600;

/// Policy numbers the scripts need, passed with every call.
#[derive(Debug, Clone)]
pub struct Tunables {
    pub offer_timeout: Duration,
    pub queue_scan: usize,
    pub max_missed: u32,
    pub wrap_up_timeout: Duration,
    pub voice_exclusive: bool,
    pub window: Duration,
    pub service_level_threshold: Duration,
    pub call_ttl_s: u64,
    /// Weight of one CSAT sample in the learned traits (moving average).
    pub learning_rate: f64,
    /// How long a customer's live-contact marker outlives its last inbound
    /// contact's start at most: the safety net should a contact never be
    /// completed or abandoned (a crashed IVR or desktop).
    pub busy_ttl_s: u64,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            offer_timeout: Duration::from_secs(15),
            queue_scan: 8,
            max_missed: 3,
            wrap_up_timeout: Duration::from_secs(60),
            voice_exclusive: true,
            window: Duration::from_secs(900),
            service_level_threshold: Duration::from_secs(20),
            call_ttl_s: 86_400,
            learning_rate: 0.2,
            busy_ttl_s: DEFAULT_BUSY_TTL_S,
        }
    }
}

impl Tunables {
    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.offer_timeout.as_millis(),
            self.queue_scan,
            self.max_missed,
            self.wrap_up_timeout.as_millis(),
            u8::from(self.voice_exclusive),
            self.window.as_millis(),
            self.service_level_threshold.as_millis(),
            self.call_ttl_s,
            self.learning_rate,
            self.busy_ttl_s.max(1)
        )
    }
}

/// An agent's presence, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    LoggedOut,
    NotReady,
    Ready,
    WrapUp,
}

impl Presence {
    fn parse(s: &str) -> Result<Self, StateError> {
        Ok(match s {
            "logged_out" => Self::LoggedOut,
            "not_ready" => Self::NotReady,
            "ready" => Self::Ready,
            "wrap_up" => Self::WrapUp,
            other => return Err(StateError::Corrupt(format!("agent status {other:?}"))),
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::NotReady => "not_ready",
            Self::Ready => "ready",
            Self::WrapUp => "wrap_up",
        }
    }
}

/// What an agent is doing: its presence, unless it holds contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    LoggedOut,
    NotReady,
    Ready,
    WrapUp,
    /// Holds an offer not yet accepted.
    Reserved,
    /// Connected to a contact.
    Busy,
}

/// A contact an agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub call_id: String,
    pub channel: i32,
    /// `offered` or `connected`.
    pub status: String,
    pub offer_id: String,
}

/// An agent's live state.
#[derive(Debug, Clone)]
pub struct AgentSnapshot {
    /// The profile given at login, with the learned traits.
    pub profile: AgentProfile,
    pub presence: Presence,
    pub held: Vec<Held>,
    pub status_since_ms: i64,
    pub missed_offers: u32,
    pub on_duty_until_ms: i64,
}

impl AgentSnapshot {
    /// Offers pending win over connected contacts, which win over presence.
    pub fn status(&self) -> Status {
        if self.held.iter().any(|h| h.status == "offered") {
            Status::Reserved
        } else if !self.held.is_empty() {
            Status::Busy
        } else {
            match self.presence {
                Presence::LoggedOut => Status::LoggedOut,
                Presence::NotReady => Status::NotReady,
                Presence::Ready => Status::Ready,
                Presence::WrapUp => Status::WrapUp,
            }
        }
    }
    /// The first contact held (an offer first).
    pub fn call_id(&self) -> &str {
        self.held
            .iter()
            .find(|h| h.status == "offered")
            .or(self.held.first())
            .map(|h| h.call_id.as_str())
            .unwrap_or("")
    }
}

/// The result of a status change: the new presence and, when turning ready
/// took a queued contact, that contact's id.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub presence: Presence,
    pub assigned_call: Option<String>,
}

/// A contact's live state.
#[derive(Debug, Clone, Default)]
pub struct CallSnapshot {
    pub fields: HashMap<String, String>,
    /// 1-based queue position while queued.
    pub queue_position: Option<u64>,
}

impl CallSnapshot {
    pub fn get(&self, field: &str) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }
    pub fn get_i64(&self, field: &str) -> i64 {
        self.get(field).parse().unwrap_or(0)
    }
    pub fn channel(&self) -> i32 {
        self.get("ch").parse().unwrap_or(1)
    }
}

/// The best idle candidates of a group.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// How many free agents of the group meet the minimum score.
    pub eligible: u64,
    /// The best of them (at most the limit), plus the extra agents asked
    /// for if they are eligible, in index order.
    pub list: Vec<Candidate>,
}

/// A new contact to place.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub call_id: &'a str,
    pub channel: i32,
    pub group: &'a str,
    pub min_score: f64,
    /// Widening steps after the exact requirements: (group, min, after ms).
    pub steps: Vec<(String, f64, u64)>,
    /// Extra fields stored with the contact (customer, selection, needs…).
    pub fields: Vec<(&'static str, Vec<u8>)>,
}

impl NewCall<'_> {
    fn encoded_steps(&self) -> String {
        self.steps
            .iter()
            .map(|(g, m, at)| format!("{g},{m},{at}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Where a new contact went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Reserved this agent; `ranked` is false when every ranked candidate
    /// had been taken and the index supplied a fresh one.
    Assigned {
        agent_id: String,
        ranked: bool,
        offer_id: String,
    },
    Queued {
        position: u64,
    },
    /// Nobody was free and queueing was not asked for; nothing was written.
    NoAgent,
    /// The call id was already known; its current status.
    Existing {
        status: String,
    },
    /// An outbound contact whose customer is in this live inbound contact
    /// (queued, offered or connected); nothing was written.
    CustomerBusy {
        call_id: String,
    },
}

/// Where a contact for a field manager went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPlacement {
    Assigned {
        offer_id: String,
        task_id: String,
    },
    /// The manager cannot take it; nothing was written.
    Unavailable {
        reason: String,
    },
    Existing {
        status: String,
    },
}

/// A visit planned with a field-manager contact.
#[derive(Debug, Clone)]
pub struct Visit {
    pub start_ms: i64,
    pub end_ms: i64,
    pub priority: u32,
}

/// What completing a contact did.
#[derive(Debug, Clone)]
pub struct Completion {
    pub already_completed: bool,
    pub agent: StatusChange,
    /// Traits learned from the CSAT: (trait, new value).
    pub learned: Vec<(String, f64)>,
    /// The agent right after the completion, read by the same script.
    pub snapshot: AgentSnapshot,
}

/// What answering an offer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferAnswer {
    Accepted,
    AlreadyAccepted,
    /// Rejected; the contact went to `reoffered_to`, or back to its queue.
    Rejected {
        reoffered_to: Option<String>,
    },
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub handled: u64,
    pub expired: u64,
    pub widened: u64,
    pub assigned: u64,
    pub wrapped: u64,
}

/// Queue statistics of one (channel, group).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub channel: i32,
    pub group: String,
    pub waiting: u64,
    pub oldest_arrival_ms: i64,
    pub ready: u64,
    pub answered: u64,
    pub answered_fast: u64,
    pub abandoned: u64,
}

/// Queue statistics of a center.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ready_agents: u64,
    pub groups: Vec<GroupStats>,
}

/// Target of an agent status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ready,
    NotReady,
    LoggedOut,
}

/// Live state store: one multiplexed, self-reconnecting Redis connection.
#[derive(Clone)]
pub struct LiveState {
    conn: ConnectionManager,
    tunables: Arc<Tunables>,
    cfg: Arc<str>,
    registered: Arc<Mutex<HashSet<String>>>,
}

/// A span around one Redis script call: db.system, db.operation and the
/// call id (never phone numbers or names).
fn span(operation: &'static str, call_id: &str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        "db.system" = "redis",
        "db.operation" = operation,
        call_id = call_id
    )
}

impl LiveState {
    /// Connects to Redis. The connection reconnects on its own after Redis
    /// restarts.
    pub async fn connect(url: &str, tunables: Tunables) -> Result<Self, StateError> {
        let client = rapport_kit::redis::client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            cfg: tunables.encode().into(),
            tunables: Arc::new(tunables),
            registered: Arc::default(),
        })
    }

    pub fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// A script invocation with the common arguments: prefix, now, policy.
    fn invoke<'s>(&self, script: &'s Script, center: &Center, now_ms: i64) -> ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        // The call's own key is declared so a Cluster client routes the
        // script to the center's slot.
        inv.key(format!("{}due", center.prefix))
            .arg(&center.prefix)
            .arg(now_ms)
            .arg(&*self.cfg);
        inv
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        call_id: &str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn.clone();
        Ok(inv
            .invoke_async(&mut conn)
            .instrument(span(operation, call_id))
            .await?)
    }

    /// Lists the center in the registry the sweepers walk (once per process
    /// and center, and at every login so a flushed Redis relearns it).
    pub async fn register(&self, center: &Center, force: bool) -> Result<(), StateError> {
        let known = self
            .registered
            .lock()
            .map(|set| set.contains(center.id()))
            .unwrap_or(false);
        if known && !force {
            return Ok(());
        }
        let mut inv = REGISTER.prepare_invoke();
        inv.key(CENTERS_KEY).arg(center.id());
        let _: i64 = self.run("register", "", &inv).await?;
        if let Ok(mut set) = self.registered.lock() {
            set.insert(center.id().to_owned());
        }
        Ok(())
    }

    /// Every registered center.
    pub async fn centers(&self) -> Result<Vec<String>, StateError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(CENTERS_KEY).await?)
    }

    /// Logs an agent in with its requirement groups and per-channel
    /// capacity; optionally straight to ready (which may assign a queued
    /// contact at once).
    pub async fn login(
        &self,
        center: &Center,
        agent: &AgentProfile,
        groups: &[(String, f64)],
        capacity: &[(i32, u32)],
        ready: bool,
        now_ms: i64,
    ) -> Result<StatusChange, StateError> {
        self.register(center, true).await?;
        let channels: Vec<String> = capacity
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, _)| c.to_string())
            .collect();
        let caps: Vec<String> = capacity.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        let traits = agent.traits.unwrap_or_default();
        let field = agent.kind == rapport_proto::AgentKind::Field as i32;
        let mut inv = self.invoke(&LOGIN, center, now_ms);
        inv.arg(&agent.agent_id)
            .arg(agent.encode_to_vec())
            .arg(if ready { "1" } else { "0" })
            .arg(channels.join(","))
            .arg(caps.join(","))
            .arg(if field { "1" } else { "0" })
            .arg(traits.empathy.to_string())
            .arg(traits.de_escalation.to_string())
            .arg(agent.dialects.join(","))
            .arg(agent.languages.join(","));
        for (group, score) in groups {
            inv.arg(group).arg(score.to_string());
        }
        let reply: Vec<String> = self.run("login", "", &inv).await?;
        status_change(&reply)
    }

    /// Moves an agent along its state machine.
    pub async fn set_status(
        &self,
        center: &Center,
        agent_id: &str,
        target: Target,
        now_ms: i64,
    ) -> Result<StatusChange, StateError> {
        let target = match target {
            Target::Ready => Presence::Ready,
            Target::NotReady => Presence::NotReady,
            Target::LoggedOut => Presence::LoggedOut,
        };
        let mut inv = self.invoke(&SET_STATUS, center, now_ms);
        inv.arg(agent_id).arg(target.as_str());
        let reply: Vec<String> = self.run("set_status", "", &inv).await?;
        status_change(&reply)
    }

    /// A field manager's heartbeat; returns when presence lapses (ms).
    pub async fn heartbeat(
        &self,
        center: &Center,
        agent_id: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<i64, StateError> {
        let mut inv = self.invoke(&HEARTBEAT, center, now_ms);
        inv.arg(agent_id).arg(ttl.as_millis() as u64);
        let reply: Vec<String> = self.run("heartbeat", "", &inv).await?;
        match reply.as_slice() {
            [tag, until] if tag == "ok" => until
                .parse()
                .map_err(|_| StateError::Corrupt(format!("heartbeat reply {until:?}"))),
            other => Err(script_error(other)),
        }
    }

    /// One agent's state, in one round trip (`agent.lua`).
    pub async fn agent(
        &self,
        center: &Center,
        agent_id: &str,
    ) -> Result<AgentSnapshot, StateError> {
        let mut inv = self.invoke(&AGENT, center, 0);
        inv.arg(agent_id);
        let reply: Vec<Vec<u8>> = self.run("agent", "", &inv).await?;
        agent_view(agent_id, &reply)
    }

    /// The best free candidates of a group on a channel at or above
    /// `min_score`, plus `extra` agents (preferred, affinity) if eligible.
    pub async fn candidates(
        &self,
        center: &Center,
        channel: i32,
        group: &str,
        min_score: f64,
        limit: usize,
        extra: &[String],
    ) -> Result<Candidates, StateError> {
        let mut inv = CANDIDATES.prepare_invoke();
        inv.key(center.idle(channel, group))
            .arg(&center.prefix)
            .arg(0)
            .arg(&*self.cfg)
            .arg(min_score.to_string())
            .arg(limit);
        for id in extra {
            inv.arg(id);
        }
        let reply: Vec<String> = self.run("candidates", "", &inv).await?;
        let (eligible, rest) = reply
            .split_first()
            .ok_or_else(|| StateError::Corrupt("empty candidates reply".into()))?;
        let eligible = eligible
            .parse()
            .map_err(|_| StateError::Corrupt(format!("candidate count {eligible:?}")))?;
        let list_of = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let list = rest
            .iter()
            .map(|line| {
                let c: Vec<&str> = line.split('\t').collect();
                let [
                    id,
                    score,
                    idle,
                    empathy,
                    de_escalation,
                    load,
                    capacity,
                    dialects,
                    languages,
                ] = c[..]
                else {
                    return Err(StateError::Corrupt(format!("candidate {line:?}")));
                };
                let load: f64 = load.parse().unwrap_or(0.0);
                let capacity: f64 = capacity.parse().unwrap_or(0.0);
                Ok(Candidate {
                    agent_id: id.to_owned(),
                    score: score.parse().unwrap_or(0.0),
                    idle_since_ms: idle.parse().unwrap_or(0),
                    empathy: empathy.parse().unwrap_or(0.0),
                    de_escalation: de_escalation.parse().unwrap_or(0.0),
                    occupancy: if capacity > 0.0 { load / capacity } else { 0.0 },
                    dialects: list_of(dialects),
                    languages: list_of(languages),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Candidates { eligible, list })
    }

    /// Atomically reserves the first still-free agent of `ranked` (or any
    /// free agent of the group), or queues the contact (when `queue`). An
    /// outbound contact (field `direction` = `outbound`) whose customer is
    /// in a live inbound contact is refused with `CustomerBusy`.
    pub async fn place(
        &self,
        center: &Center,
        call: &NewCall<'_>,
        ranked: &[String],
        queue: bool,
        now_ms: i64,
    ) -> Result<Placement, StateError> {
        Ok(self
            .place_detailed(center, call, ranked, queue, now_ms)
            .await?
            .0)
    }

    /// [`place`](Self::place), with the reserved agent's stored profile
    /// read in the same script (so RouteCall needs no second round trip).
    pub async fn place_detailed(
        &self,
        center: &Center,
        call: &NewCall<'_>,
        ranked: &[String],
        queue: bool,
        now_ms: i64,
    ) -> Result<(Placement, Option<AgentProfile>), StateError> {
        self.register(center, false).await?;
        let mut inv = self.invoke(&ROUTE, center, now_ms);
        inv.arg(call.call_id)
            .arg(call.channel)
            .arg(call.group)
            .arg(call.min_score.to_string())
            .arg(if queue { "queue" } else { "noqueue" })
            .arg(call.encoded_steps())
            .arg(ranked.len());
        for id in ranked {
            inv.arg(id);
        }
        for (field, value) in &call.fields {
            inv.arg(*field).arg(value.as_slice());
        }
        // Byte strings: the assigned reply carries the encoded profile.
        let reply: Vec<Vec<u8>> = self.run("route", call.call_id, &inv).await?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match reply.as_slice() {
            [tag, id, how, offer, profile] if tag == b"assigned" => {
                let profile = AgentProfile::decode(profile.as_slice())
                    .map_err(|e| StateError::Corrupt(format!("agent profile: {e}")))?;
                Ok((
                    Placement::Assigned {
                        agent_id: text(id),
                        ranked: how == b"ranked",
                        offer_id: text(offer),
                    },
                    Some(profile),
                ))
            }
            [tag, pos] if tag == b"queued" => Ok((
                Placement::Queued {
                    position: text(pos).parse().unwrap_or(0),
                },
                None,
            )),
            [tag] if tag == b"none" => Ok((Placement::NoAgent, None)),
            [tag, status] if tag == b"existing" => Ok((
                Placement::Existing {
                    status: text(status),
                },
                None,
            )),
            [tag, busy] if tag == b"busy" => Ok((
                Placement::CustomerBusy {
                    call_id: text(busy),
                },
                None,
            )),
            other => Err(StateError::Corrupt(format!(
                "route reply {:?}",
                other.iter().map(|b| text(b)).collect::<Vec<_>>()
            ))),
        }
    }

    /// Reserves the customer's dedicated field manager if on duty and free,
    /// and plans the visit follow-up in the same step.
    pub async fn place_with_field_manager(
        &self,
        center: &Center,
        call: &NewCall<'_>,
        manager_id: &str,
        visit: &Visit,
        now_ms: i64,
    ) -> Result<FieldPlacement, StateError> {
        self.register(center, false).await?;
        let mut inv = self.invoke(&ROUTE_FIELD, center, now_ms);
        inv.arg(call.call_id)
            .arg(call.channel)
            .arg(manager_id)
            .arg(call.group)
            .arg(visit.start_ms)
            .arg(visit.end_ms)
            .arg(visit.priority);
        for (field, value) in &call.fields {
            inv.arg(*field).arg(value.as_slice());
        }
        let reply: Vec<String> = self.run("route_field", call.call_id, &inv).await?;
        match reply.as_slice() {
            [tag, _, offer, task] if tag == "assigned" => Ok(FieldPlacement::Assigned {
                offer_id: offer.clone(),
                task_id: task.clone(),
            }),
            [tag, reason] if tag == "unavailable" => Ok(FieldPlacement::Unavailable {
                reason: reason.clone(),
            }),
            [tag, status] if tag == "existing" => Ok(FieldPlacement::Existing {
                status: status.clone(),
            }),
            other => Err(StateError::Corrupt(format!("route_field reply {other:?}"))),
        }
    }

    /// One contact's state.
    pub async fn call(&self, center: &Center, call_id: &str) -> Result<CallSnapshot, StateError> {
        let mut conn = self.conn.clone();
        let raw: HashMap<String, Vec<u8>> = conn
            .hgetall(center.call(call_id))
            .instrument(span("call", call_id))
            .await?;
        if raw.is_empty() {
            return Err(StateError::NotFound(format!("call {call_id} is unknown")));
        }
        // Binary fields (the screen pop) are read separately by `call_blob`.
        let fields: HashMap<String, String> = raw
            .into_iter()
            .filter(|(k, _)| k != "pop")
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let queue_position = if fields.get("status").map(String::as_str) == Some("queued") {
            let group = fields.get("group").cloned().unwrap_or_default();
            let channel = fields.get("ch").and_then(|c| c.parse().ok()).unwrap_or(1);
            let rank: Option<u64> = conn.zrank(center.queue(channel, &group), call_id).await?;
            rank.map(|r| r + 1)
        } else {
            None
        };
        Ok(CallSnapshot {
            fields,
            queue_position,
        })
    }

    /// A binary field of a contact (e.g. the encoded screen pop).
    pub async fn call_blob(
        &self,
        center: &Center,
        call_id: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(center.call(call_id), field).await?)
    }

    /// Answers in the group's recent service: how many contacts were
    /// answered in the window and when the first of them was.
    pub async fn service_rate(
        &self,
        center: &Center,
        channel: i32,
        group: &str,
        now_ms: i64,
    ) -> Result<(u64, i64), StateError> {
        let mut conn = self.conn.clone();
        let key = center.answered(channel, group);
        let from = now_ms - self.tunables.window.as_millis() as i64;
        let (count, first): (u64, Vec<(String, f64)>) = redis::pipe()
            .zcount(&key, from, "+inf")
            .zrangebyscore_limit_withscores(&key, from, "+inf", 0, 1)
            .query_async(&mut conn)
            .instrument(span("service_rate", ""))
            .await?;
        Ok((
            count,
            first.first().map(|(_, s)| *s as i64).unwrap_or(now_ms),
        ))
    }

    /// Completes a contact and releases its agent, who enters wrap-up (when
    /// asked and holding nothing else) or takes the next queued contact.
    /// Completing twice is harmless.
    pub async fn complete(
        &self,
        center: &Center,
        call_id: &str,
        agent_id: &str,
        csat: u32,
        wrap_up: bool,
        now_ms: i64,
    ) -> Result<Completion, StateError> {
        let mut inv = self.invoke(&COMPLETE, center, now_ms);
        inv.arg(call_id)
            .arg(agent_id)
            .arg(csat)
            .arg(if wrap_up { "1" } else { "0" });
        let reply: Vec<Vec<u8>> = self.run("complete", call_id, &inv).await?;
        let head = texts(reply.get(..4).unwrap_or(&reply));
        if head.first().map(String::as_str) == Some("err") {
            return Err(script_error(&head));
        }
        let already = head.first().map(String::as_str) == Some("already");
        let learned = match head.get(3) {
            Some(s) => s
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0.0)))
                .collect(),
            None => Vec::new(),
        };
        let agent = status_change(head.get(..3).unwrap_or(&head))?;
        let snapshot = agent_view(agent_id, reply.get(4..).unwrap_or_default())?;
        Ok(Completion {
            already_completed: already,
            agent,
            learned,
            snapshot,
        })
    }

    /// Accepts or rejects an offer.
    pub async fn answer_offer(
        &self,
        center: &Center,
        agent_id: &str,
        offer_id: &str,
        accept: bool,
        now_ms: i64,
    ) -> Result<OfferAnswer, StateError> {
        Ok(self
            .answer_offer_viewed(center, agent_id, offer_id, accept, now_ms)
            .await?
            .0)
    }

    /// [`answer_offer`](Self::answer_offer), with the agent right after the
    /// answer, read by the same script.
    pub async fn answer_offer_viewed(
        &self,
        center: &Center,
        agent_id: &str,
        offer_id: &str,
        accept: bool,
        now_ms: i64,
    ) -> Result<(OfferAnswer, AgentSnapshot), StateError> {
        let mut inv = self.invoke(&OFFER, center, now_ms);
        inv.arg(agent_id)
            .arg(offer_id)
            .arg(if accept { "accept" } else { "reject" });
        let call_id = offer_id.rsplit_once(':').map(|(c, _)| c).unwrap_or("");
        let reply: Vec<Vec<u8>> = self
            .run(if accept { "accept" } else { "reject" }, call_id, &inv)
            .await?;
        let head = texts(reply.get(..3).unwrap_or(&reply));
        let answer = match head.as_slice() {
            [tag, _, _] if tag == "already" => OfferAnswer::AlreadyAccepted,
            [tag, _, _] if tag == "ok" && accept => OfferAnswer::Accepted,
            [tag, _, other] if tag == "ok" => OfferAnswer::Rejected {
                reoffered_to: (!other.is_empty()).then(|| other.clone()),
            },
            other => return Err(script_error(other)),
        };
        let snapshot = agent_view(agent_id, reply.get(3..).unwrap_or_default())?;
        Ok((answer, snapshot))
    }

    /// The caller hung up while waiting. Returns (already abandoned, wait ms).
    pub async fn abandon(
        &self,
        center: &Center,
        call_id: &str,
        now_ms: i64,
    ) -> Result<(bool, i64), StateError> {
        let mut inv = self.invoke(&ABANDON, center, now_ms);
        inv.arg(call_id);
        let reply: Vec<String> = self.run("abandon", call_id, &inv).await?;
        match reply.as_slice() {
            [tag, wait] if tag == "ok" || tag == "already" => {
                Ok((tag == "already", wait.parse().unwrap_or(0)))
            }
            other => Err(script_error(other)),
        }
    }

    /// The caller accepted a callback in a window; persists the callback
    /// task. Returns (already accepted, task id).
    #[allow(clippy::too_many_arguments)]
    pub async fn accept_callback(
        &self,
        center: &Center,
        call_id: &str,
        window: (i64, i64),
        priority: u32,
        phone: &str,
        hand_off: bool,
        now_ms: i64,
    ) -> Result<(bool, String), StateError> {
        let mut inv = self.invoke(&CALLBACK, center, now_ms);
        inv.arg(call_id)
            .arg(window.0)
            .arg(window.1)
            .arg(priority)
            .arg(phone)
            .arg(if hand_off { "1" } else { "0" });
        let reply: Vec<String> = self.run("callback", call_id, &inv).await?;
        match reply.as_slice() {
            [tag, task] if tag == "ok" || tag == "already" => Ok((tag == "already", task.clone())),
            other => Err(script_error(other)),
        }
    }

    /// Follow-up tasks waiting to be handed to the outreach scheduler whose
    /// next attempt is due, oldest first, at most `limit`.
    pub async fn pending_handoffs(
        &self,
        center: &Center,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<HashMap<String, String>>, StateError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{}handoff", center.prefix))
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .instrument(span("pending_handoffs", ""))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(center.task(id));
        }
        let tasks: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(tasks)
    }

    /// One follow-up task, `None` when it is unknown.
    pub async fn follow_up(
        &self,
        center: &Center,
        task_id: &str,
    ) -> Result<Option<HashMap<String, String>>, StateError> {
        let mut conn = self.conn.clone();
        let task: HashMap<String, String> = conn
            .hgetall(center.task(task_id))
            .instrument(span("follow_up", ""))
            .await?;
        Ok((!task.is_empty()).then_some(task))
    }

    /// Records the outcome of one hand-over of a follow-up task.
    pub async fn handoff_result(
        &self,
        center: &Center,
        task_id: &str,
        result: Handoff<'_>,
        now_ms: i64,
    ) -> Result<(), StateError> {
        let mut inv = self.invoke(&HANDOFF, center, now_ms);
        inv.arg(task_id);
        match result {
            Handoff::Done => inv.arg("done").arg(0).arg(""),
            Handoff::RetryAt(at) => inv.arg("retry").arg(at).arg(""),
            Handoff::Failed(reason) => inv.arg("failed").arg(0).arg(reason),
        };
        let _: i64 = self.run("handoff", "", &inv).await?;
        Ok(())
    }

    /// Follow-up tasks (callbacks, visits), soonest first.
    pub async fn follow_ups(
        &self,
        center: &Center,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HashMap<String, String>>, StateError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrange(format!("{}tasks", center.prefix), 0, -1)
            .instrument(span("follow_ups", ""))
            .await?;
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= limit {
                break;
            }
            let task: HashMap<String, String> = conn.hgetall(center.task(&id)).await?;
            if task.is_empty()
                || kind.is_some_and(|k| task.get("kind").map(String::as_str) != Some(k))
            {
                continue;
            }
            out.push(task);
        }
        Ok(out)
    }

    /// Processes due timers (offer expiry, widening, retries, wrap-up) of a
    /// center, at most `limit` of them. Safe on any replica at any time.
    pub async fn sweep(
        &self,
        center: &Center,
        now_ms: i64,
        limit: usize,
    ) -> Result<SweepReport, StateError> {
        let mut inv = self.invoke(&SWEEP, center, now_ms);
        inv.arg(limit);
        let reply: Vec<u64> = self.run("sweep", "", &inv).await?;
        match reply.as_slice() {
            [handled, expired, widened, assigned, wrapped] => Ok(SweepReport {
                handled: *handled,
                expired: *expired,
                widened: *widened,
                assigned: *assigned,
                wrapped: *wrapped,
            }),
            other => Err(StateError::Corrupt(format!("sweep reply {other:?}"))),
        }
    }

    /// Queue statistics of a center over the sliding window.
    pub async fn stats(&self, center: &Center, now_ms: i64) -> Result<Stats, StateError> {
        let inv = self.invoke(&STATS, center, now_ms);
        let reply: Vec<String> = self.run("stats", "", &inv).await?;
        let (ready, rest) = reply
            .split_first()
            .ok_or_else(|| StateError::Corrupt("empty stats reply".into()))?;
        let n = |s: &String| s.parse::<u64>().unwrap_or(0);
        let groups = rest
            .chunks_exact(7)
            .filter_map(|c| {
                let (channel, group) = c[0].split_once(':')?;
                Some(GroupStats {
                    channel: channel.parse().unwrap_or(1),
                    group: group.to_owned(),
                    waiting: n(&c[1]),
                    oldest_arrival_ms: c[2].parse::<f64>().unwrap_or(0.0) as i64,
                    ready: n(&c[3]),
                    answered: n(&c[4]),
                    answered_fast: n(&c[5]),
                    abandoned: n(&c[6]),
                })
            })
            .collect();
        Ok(Stats {
            ready_agents: ready.parse().unwrap_or(0),
            groups,
        })
    }

    /// Agents per presence (and `holding`: agents holding contacts).
    pub async fn agent_counts(&self, center: &Center) -> Result<HashMap<String, i64>, StateError> {
        let mut conn = self.conn.clone();
        Ok(conn
            .hgetall(format!("{}agent_counts", center.prefix))
            .await?)
    }
}

fn script_error(reply: &[String]) -> StateError {
    match reply {
        [tag, kind, message] if tag == "err" => match kind.as_str() {
            "not_found" => StateError::NotFound(message.clone()),
            "failed_precondition" => StateError::FailedPrecondition(message.clone()),
            other => StateError::Corrupt(format!("script error kind {other}: {message}")),
        },
        other => StateError::Corrupt(format!("script reply {other:?}")),
    }
}

/// The leading text fields of a binary-safe script reply.
fn texts(fields: &[Vec<u8>]) -> Vec<String> {
    fields
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// Parses `{'ok'|'already', presence, assigned}` or `{'err', kind, message}`.
fn status_change(reply: &[String]) -> Result<StatusChange, StateError> {
    match reply {
        [tag, status, assigned] if tag == "ok" || tag == "already" => Ok(StatusChange {
            presence: Presence::parse(status)?,
            assigned_call: (!assigned.is_empty()).then(|| assigned.clone()),
        }),
        other => Err(script_error(other)),
    }
}

/// Parses the prelude's `agent_view` reply: seven agent fields, then four
/// per held contact. An empty reply means the agent never logged in.
fn agent_view(agent_id: &str, reply: &[Vec<u8>]) -> Result<AgentSnapshot, StateError> {
    if reply.is_empty() {
        return Err(StateError::NotFound(format!(
            "agent {agent_id} is not logged in"
        )));
    }
    let (fields, held) = reply
        .split_at_checked(7)
        .ok_or_else(|| StateError::Corrupt(format!("agent reply of {} fields", reply.len())))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut profile = AgentProfile::decode(fields[6].as_slice())
        .map_err(|e| StateError::Corrupt(format!("agent profile: {e}")))?;
    profile.traits = Some(AgentTraits {
        empathy: text(&fields[4]).parse().unwrap_or(0.0),
        de_escalation: text(&fields[5]).parse().unwrap_or(0.0),
    });
    let mut calls: Vec<Held> = held
        .chunks_exact(4)
        .map(|c| Held {
            call_id: text(&c[0]),
            channel: text(&c[1]).parse().unwrap_or(1),
            status: text(&c[2]),
            offer_id: text(&c[3]),
        })
        .collect();
    calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    Ok(AgentSnapshot {
        profile,
        presence: Presence::parse(&text(&fields[0]))?,
        held: calls,
        status_since_ms: text(&fields[1]).parse().unwrap_or(0),
        missed_offers: text(&fields[2]).parse().unwrap_or(0),
        on_duty_until_ms: text(&fields[3]).parse().unwrap_or(0),
    })
}
