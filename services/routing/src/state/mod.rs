//! Live agent and contact state in Redis.
//!
//! This is the only module that writes routing keys. Every state change is
//! one Lua script, so it is atomic: an agent is reserved only if it is still
//! idle at that instant, which is what makes double booking impossible even
//! with many routing replicas. All keys of a center carry its hash tag
//! (`rapport:{<center>}:…`), so the scripts also run on Redis Cluster.
//!
//! Keys, for center `cc`:
//! - `rapport:{cc}:agent:<id>` hash: encoded profile, status, call id,
//!   status_since, idle_since.
//! - `rapport:{cc}:agent:<id>:groups` hash: requirement group → skill score.
//! - `rapport:{cc}:idle:<group>` sorted set: idle agents by skill score.
//! - `rapport:{cc}:queue:<group>` sorted set: waiting contacts by arrival.
//! - `rapport:{cc}:queues` set: groups with waiting contacts.
//! - `rapport:{cc}:call:<id>` hash: one contact's live state (expires).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use prost::Message as _;
use rapport_proto::AgentProfile;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};

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
static COMPLETE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/complete.lua")));
static CANDIDATES: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/candidates.lua")));

/// The keys of one contact center. Built only from validated ids.
#[derive(Debug, Clone)]
pub struct Center {
    id: String,
    prefix: String,
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
    fn agent(&self, id: &str) -> String {
        format!("{}agent:{id}", self.prefix)
    }
    fn groups(&self, id: &str) -> String {
        format!("{}agent:{id}:groups", self.prefix)
    }
    fn idle(&self, group: &str) -> String {
        format!("{}idle:{group}", self.prefix)
    }
    fn queue(&self, group: &str) -> String {
        format!("{}queue:{group}", self.prefix)
    }
    fn call(&self, id: &str) -> String {
        format!("{}call:{id}", self.prefix)
    }
}

/// Agent status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    LoggedOut,
    NotReady,
    Ready,
    Reserved,
    Busy,
}

impl Status {
    fn parse(s: &str) -> Result<Self, StateError> {
        Ok(match s {
            "logged_out" => Self::LoggedOut,
            "not_ready" => Self::NotReady,
            "ready" => Self::Ready,
            "reserved" => Self::Reserved,
            "busy" => Self::Busy,
            other => return Err(StateError::Corrupt(format!("agent status {other:?}"))),
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::NotReady => "not_ready",
            Self::Ready => "ready",
            Self::Reserved => "reserved",
            Self::Busy => "busy",
        }
    }
}

/// An agent's live state.
#[derive(Debug, Clone)]
pub struct AgentSnapshot {
    pub profile: AgentProfile,
    pub status: Status,
    pub call_id: String,
    pub status_since_ms: i64,
}

/// The result of a status change: the new status and, when turning ready
/// took a queued contact, that contact's id.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub status: Status,
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
}

/// The best idle candidates of a group.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// How many idle agents of the group meet the minimum score.
    pub eligible: u64,
    /// The best of them, at most the configured limit, in index order.
    pub list: Vec<Candidate>,
}

/// A new contact to place.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub call_id: &'a str,
    pub group: &'a str,
    pub min_score: f64,
    /// Extra fields stored with the contact (customer, selection, channel).
    pub fields: Vec<(&'static str, String)>,
}

/// Where a new contact went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Reserved this agent; `ranked` is false when every ranked candidate
    /// had been taken and the index supplied a fresh one.
    Assigned {
        agent_id: String,
        ranked: bool,
    },
    Queued {
        position: u64,
    },
    /// The call id was already known; its current status.
    Existing {
        status: String,
    },
}

/// What completing a contact did.
#[derive(Debug, Clone)]
pub struct Completion {
    pub already_completed: bool,
    pub agent: StatusChange,
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
    queue_scan: usize,
    call_ttl_s: u64,
}

impl LiveState {
    /// Connects to Redis. The connection reconnects on its own after Redis
    /// restarts.
    pub async fn connect(
        url: &str,
        queue_scan: usize,
        call_ttl_s: u64,
    ) -> Result<Self, StateError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            queue_scan,
            call_ttl_s,
        })
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Logs an agent in with its requirement groups; optionally straight to
    /// ready (which may assign a queued contact at once).
    pub async fn login(
        &self,
        center: &Center,
        agent: &AgentProfile,
        groups: &[(String, f64)],
        ready: bool,
        now_ms: i64,
    ) -> Result<StatusChange, StateError> {
        let mut inv = LOGIN.prepare_invoke();
        inv.key(center.agent(&agent.agent_id))
            .key(center.groups(&agent.agent_id))
            .arg(&center.prefix)
            .arg(&agent.agent_id)
            .arg(agent.encode_to_vec())
            .arg(now_ms)
            .arg(if ready { "1" } else { "0" })
            .arg(self.queue_scan);
        for (group, score) in groups {
            inv.arg(group).arg(score.to_string());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
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
            Target::Ready => Status::Ready,
            Target::NotReady => Status::NotReady,
            Target::LoggedOut => Status::LoggedOut,
        };
        let reply: Vec<String> = SET_STATUS
            .key(center.agent(agent_id))
            .arg(&center.prefix)
            .arg(agent_id)
            .arg(target.as_str())
            .arg(now_ms)
            .arg(self.queue_scan)
            .invoke_async(&mut self.conn.clone())
            .await?;
        status_change(&reply)
    }

    /// One agent's state.
    pub async fn agent(
        &self,
        center: &Center,
        agent_id: &str,
    ) -> Result<AgentSnapshot, StateError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, Vec<u8>> = conn.hgetall(center.agent(agent_id)).await?;
        if fields.is_empty() {
            return Err(StateError::NotFound(format!(
                "agent {agent_id} is not logged in"
            )));
        }
        let text = |f: &str| {
            fields
                .get(f)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let profile = AgentProfile::decode(fields.get("profile").map(Vec::as_slice).unwrap_or(&[]))
            .map_err(|e| StateError::Corrupt(format!("agent profile: {e}")))?;
        Ok(AgentSnapshot {
            profile,
            status: Status::parse(&text("status"))?,
            call_id: text("call_id"),
            status_since_ms: text("status_since").parse().unwrap_or(0),
        })
    }

    /// The best idle candidates of a group at or above `min_score`.
    pub async fn candidates(
        &self,
        center: &Center,
        group: &str,
        min_score: f64,
        limit: usize,
    ) -> Result<Candidates, StateError> {
        let reply: Vec<String> = CANDIDATES
            .key(center.idle(group))
            .arg(&center.prefix)
            .arg(min_score.to_string())
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let (eligible, rest) = reply
            .split_first()
            .ok_or_else(|| StateError::Corrupt("empty candidates reply".into()))?;
        let eligible = eligible
            .parse()
            .map_err(|_| StateError::Corrupt(format!("candidate count {eligible:?}")))?;
        let list = rest
            .chunks_exact(3)
            .map(|c| Candidate {
                agent_id: c[0].clone(),
                score: c[1].parse().unwrap_or(0.0),
                idle_since_ms: c[2].parse().unwrap_or(0),
            })
            .collect();
        Ok(Candidates { eligible, list })
    }

    /// Atomically reserves the first still-free agent of `ranked` (or any
    /// free agent of the group), or queues the contact.
    pub async fn place(
        &self,
        center: &Center,
        call: &NewCall<'_>,
        ranked: &[String],
        now_ms: i64,
    ) -> Result<Placement, StateError> {
        let mut inv = ROUTE.prepare_invoke();
        inv.key(center.call(call.call_id))
            .key(center.idle(call.group))
            .key(center.queue(call.group))
            .arg(&center.prefix)
            .arg(call.call_id)
            .arg(call.group)
            .arg(call.min_score.to_string())
            .arg(now_ms)
            .arg(self.call_ttl_s)
            .arg(ranked.len());
        for id in ranked {
            inv.arg(id);
        }
        for (field, value) in &call.fields {
            inv.arg(*field).arg(value);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.as_slice() {
            [tag, id, how] if tag == "assigned" => Ok(Placement::Assigned {
                agent_id: id.clone(),
                ranked: how == "ranked",
            }),
            [tag, pos] if tag == "queued" => Ok(Placement::Queued {
                position: pos.parse().unwrap_or(0),
            }),
            [tag, status] if tag == "existing" => Ok(Placement::Existing {
                status: status.clone(),
            }),
            other => Err(StateError::Corrupt(format!("route reply {other:?}"))),
        }
    }

    /// One contact's state.
    pub async fn call(&self, center: &Center, call_id: &str) -> Result<CallSnapshot, StateError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = conn.hgetall(center.call(call_id)).await?;
        if fields.is_empty() {
            return Err(StateError::NotFound(format!("call {call_id} is unknown")));
        }
        let queue_position = if fields.get("status").map(String::as_str) == Some("queued") {
            let group = fields.get("group").cloned().unwrap_or_default();
            let rank: Option<u64> = conn.zrank(center.queue(&group), call_id).await?;
            rank.map(|r| r + 1)
        } else {
            None
        };
        Ok(CallSnapshot {
            fields,
            queue_position,
        })
    }

    /// Completes a contact and releases its agent, who may take the next
    /// queued contact at once. Completing twice is harmless.
    pub async fn complete(
        &self,
        center: &Center,
        call_id: &str,
        agent_id: &str,
        now_ms: i64,
    ) -> Result<Completion, StateError> {
        let reply: Vec<String> = COMPLETE
            .key(center.call(call_id))
            .key(center.agent(agent_id))
            .arg(&center.prefix)
            .arg(call_id)
            .arg(agent_id)
            .arg(now_ms)
            .arg(self.queue_scan)
            .arg(self.call_ttl_s)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let already = reply.first().map(String::as_str) == Some("already");
        let agent = status_change(&reply)?;
        Ok(Completion {
            already_completed: already,
            agent,
        })
    }
}

/// Parses `{'ok'|'already', status, assigned}` or `{'err', kind, message}`.
fn status_change(reply: &[String]) -> Result<StatusChange, StateError> {
    match reply {
        [tag, status, assigned] if tag == "ok" || tag == "already" => Ok(StatusChange {
            status: Status::parse(status)?,
            assigned_call: (!assigned.is_empty()).then(|| assigned.clone()),
        }),
        [tag, kind, message] if tag == "err" => Err(match kind.as_str() {
            "not_found" => StateError::NotFound(message.clone()),
            "failed_precondition" => StateError::FailedPrecondition(message.clone()),
            other => StateError::Corrupt(format!("script error kind {other}: {message}")),
        }),
        other => Err(StateError::Corrupt(format!("script reply {other:?}"))),
    }
}
