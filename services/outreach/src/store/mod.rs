//! The scheduler's state in Redis: care tasks, the due index, leases with
//! fencing tokens, the per-customer frequency log and the dial stream.
//!
//! This is the only module that writes outreach keys. Every state change of
//! a task is one Lua script (`lua/`, sharing `prelude.lua`), so it is
//! atomic across replicas. All keys carry the hash tag `{out}`
//! (`rapport:{out}:…`), so the scripts also run on Redis Cluster. Time is an
//! argument of every script, so tests drive due times and lease expiry with
//! an injected clock.
//!
//! Every operation is a `redis` span (`db.system`, `db.operation`; never
//! a customer's phone or name), so a care task's trace shows its scripts.
//!
//! Keys (see ARCHITECTURE.md):
//! - `task:<id>` hash: one task (state, due, priority, fencing token,
//!   lease, attempt, cycle, the encoded `CareTask`, JSON meta).
//! - `due:<0..=3>` sorted sets: pending tasks by due time, one per priority.
//! - `leases` sorted set: claimed tasks by lease expiry.
//! - `dispatched` sorted set: dispatched tasks by dispatch time (overdue
//!   outcomes).
//! - `fence` counter: fencing tokens.
//! - `cust:<customer>` set: a customer's task ids.
//! - `sent:<customer>` sorted set: recent care dispatches (frequency cap).
//! - `dial` stream with consumer group `dialers`: dial requests.
//! - `feed:token`, `feed:lock`, `index:built`: change-feed position,
//!   the feed follower's lock and the rebuild marker.
//! - `fc:<week>` hashes: inbound contacts per hour of week (forecast).

use std::sync::LazyLock;
use std::time::Duration;

use prost::Message as _;
use rapport_proto as pb;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{Script, ScriptInvocation, Value};
use serde::{Deserialize, Serialize};

/// A failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis unavailable")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected outreach state: {0}")]
    Corrupt(String),
    #[error("unexpected reply from redis")]
    Parse(#[from] redis::ParsingError),
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{}", include_str!("lua/prelude.lua"), body))
}

static UPSERT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/upsert.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/claim.lua")));
static REAP: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/reap.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/renew.lua")));
static RESCHEDULE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/reschedule.lua")));
static DISPATCH: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/dispatch.lua")));
static OUTCOME: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/outcome.lua")));
static CANCEL: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/cancel.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/ack.lua")));

/// The default key prefix; its `{out}` hash tag keeps every key in one slot.
pub const PREFIX: &str = "rapport:{out}:";
/// The dialers' consumer group on the dial stream.
pub const GROUP: &str = "dialers";
/// How long a dial reader waits for Redis to answer; a read blocks for at
/// most [`MAX_READ_BLOCK`] before it.
const READER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a dial reader blocks in XREADGROUP.
pub const MAX_READ_BLOCK: Duration = Duration::from_secs(5);
/// Priorities are clamped to `0..=MAX_PRIORITY` (one due set each).
pub const MAX_PRIORITY: u32 = 3;

/// What the scheduler keeps beside the `CareTask` itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Attempts allowed before the task is given up for this cycle.
    pub max_attempts: u32,
    /// Spacing between attempts after no answer or busy, ms.
    pub retry_spacing_ms: i64,
    /// Routing skill for the care call.
    pub skill: String,
    /// Contact center that places the call.
    pub center: String,
    /// Number to dial when the task names one (a callback); otherwise the
    /// customer's first phone.
    pub phone: String,
    /// The inbound call a callback came from.
    pub call_id: String,
    /// Whether the frequency cap applies (care contacts, not callbacks the
    /// customer asked for).
    pub capped: bool,
    /// The caller's IANA zone when the task has no customer profile.
    pub time_zone: String,
}

/// Who created a task; re-planning only replaces plan-sourced tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Plan,
    Manual,
    Callback,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Manual => "manual",
            Self::Callback => "callback",
        }
    }
}

/// A task to create or update.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub task: pb::CareTask,
    pub due_ms: i64,
    pub periodic: bool,
    pub source: Source,
    pub meta: Meta,
}

/// How [`Store::upsert`] treats the customer's other tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertMode {
    /// Only write the given tasks.
    Add,
    /// The given tasks are the customer's whole policy plan: pending plan
    /// tasks not among them are dropped.
    Replan,
    /// The customer is gone: drop every unfinished task.
    Erase,
}

impl UpsertMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Replan => "replan",
            Self::Erase => "erase",
        }
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertReport {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
}

/// A task this replica holds under a lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub fence: u64,
    pub task: pb::CareTask,
    pub meta: Meta,
    pub attempt: u32,
    pub cycle: u32,
    pub due_ms: i64,
}

impl Claimed {
    /// Stable per task attempt (and per periodic cycle), so a dialer can
    /// drop a redelivered request.
    pub fn idempotency_key(&self) -> String {
        format!("{}:c{}:a{}", self.id, self.cycle, self.attempt)
    }
}

/// One dial request to publish for a claimed task.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub id: String,
    pub fence: u64,
    pub capped: bool,
    pub request: pb::DialRequest,
    pub agent_id: String,
}

/// What [`Store::dispatch`] did with one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// Published; the dial stream entry id.
    Published(String),
    /// Another claim took the task (fencing token no longer current).
    Stale,
    /// The lease ran out before dispatch.
    Expired,
    /// The customer's frequency cap is reached.
    Capped,
}

/// A task's lifecycle state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Claimed,
    Dispatched,
    Done,
    Cancelled,
}

impl TaskState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "claimed" => Self::Claimed,
            "dispatched" => Self::Dispatched,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn proto(self) -> pb::CareTaskState {
        match self {
            Self::Pending => pb::CareTaskState::Pending,
            Self::Claimed => pb::CareTaskState::Claimed,
            Self::Dispatched => pb::CareTaskState::Dispatched,
            Self::Done => pb::CareTaskState::Done,
            Self::Cancelled => pb::CareTaskState::Cancelled,
        }
    }
}

/// A task as stored, for reads (care plans, outcomes, listings).
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: String,
    pub state: TaskState,
    pub due_ms: i64,
    pub fence: u64,
    pub attempt: u32,
    pub cycle: u32,
    pub customer: String,
    pub periodic: bool,
    pub task: pb::CareTask,
    pub meta: Meta,
    /// Why a check last deferred the task, if one did.
    pub skip: String,
    pub agent_id: String,
    pub delivery: String,
}

impl Stored {
    /// The task as callers see it: state, due time and attempt filled in.
    pub fn view(&self) -> pb::CareTask {
        let mut task = self.task.clone();
        task.task_id.clone_from(&self.id);
        task.state = self.state.proto() as i32;
        task.due_at = Some(timestamp(self.due_ms));
        task.attempt = self.attempt;
        if !self.skip.is_empty() && self.state == TaskState::Pending {
            task.reason = format!("{} (deferred: {})", task.reason, self.skip);
        }
        task
    }
}

/// Why an outcome could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeRefused {
    Missing,
    NotDispatched(String),
    StaleFence,
}

/// What to do with a dispatched task once its outcome is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeAction {
    /// Same cycle, next attempt, at `due_ms`.
    Retry {
        due_ms: i64,
    },
    /// The next periodic cycle, at `due_ms`.
    Rearm {
        due_ms: i64,
    },
    Done,
}

/// Why a cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRefused {
    Missing,
    /// Already dispatched or finished.
    TooLate(String),
}

/// One dial request read from the stream.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub request: pb::DialRequest,
    /// Handed out again after its first consumer did not acknowledge it.
    pub redelivered: bool,
}

/// Handle to the scheduler's Redis state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
}

/// Builds a protobuf timestamp from Unix milliseconds.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn clamp_priority(p: u32) -> u32 {
    p.min(MAX_PRIORITY)
}

impl Store {
    /// Connects to Redis and makes sure the dial stream's consumer group
    /// exists. The connection reconnects on its own after Redis restarts.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, PREFIX).await
    }

    /// As [`Store::connect`], with another key prefix (it must carry a hash
    /// tag, e.g. `t1:{out}:`); tests use it to share one Redis.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = rapport_kit::redis::client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let store = Self {
            conn,
            client,
            prefix: prefix.to_owned(),
        };
        store.ensure_group().await?;
        Ok(store)
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The dial stream's key.
    pub fn dial_key(&self) -> String {
        self.key("dial")
    }

    /// Creates the consumer group (from the start of the stream, so
    /// requests published before it existed are delivered too). Called at
    /// connect and again after Redis lost its data.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "ensure_group"))]
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.dial_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn invoke<'s>(&self, script: &'s Script, now_ms: i64) -> ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        // Declaring one key of the slot lets a Cluster client route the
        // script; every key the script touches shares its hash tag.
        inv.key(self.key("fence")).arg(&self.prefix).arg(now_ms);
        inv
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        Ok(inv.invoke_async(&mut conn).await?)
    }

    fn upsert_invocation(
        &self,
        customer: &str,
        mode: UpsertMode,
        tasks: &[NewTask],
        now_ms: i64,
    ) -> Result<ScriptInvocation<'static>, StoreError> {
        let mut inv = self.invoke(&UPSERT, now_ms);
        inv.arg(customer).arg(mode.as_str()).arg(tasks.len());
        for t in tasks {
            let meta = serde_json::to_string(&t.meta)
                .map_err(|e| StoreError::Corrupt(format!("meta: {e}")))?;
            inv.arg(&t.task.task_id)
                .arg(t.due_ms)
                .arg(clamp_priority(t.task.priority))
                .arg(if t.periodic { "1" } else { "0" })
                .arg(t.source.as_str())
                .arg(t.task.encode_to_vec())
                .arg(meta);
        }
        Ok(inv)
    }

    /// Writes tasks for one customer (see [`UpsertMode`]); safe to repeat.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "upsert"))]
    pub async fn upsert(
        &self,
        customer: &str,
        mode: UpsertMode,
        tasks: &[NewTask],
        now_ms: i64,
    ) -> Result<UpsertReport, StoreError> {
        let inv = self.upsert_invocation(customer, mode, tasks, now_ms)?;
        let (created, updated, removed): (u64, u64, u64) = self.run(&inv).await?;
        Ok(UpsertReport {
            created,
            updated,
            removed,
        })
    }

    /// Writes the plans of many customers in one round trip (a rebuild).
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "upsert_many"))]
    pub async fn upsert_many(
        &self,
        batch: &[(String, UpsertMode, Vec<NewTask>)],
        now_ms: i64,
    ) -> Result<UpsertReport, StoreError> {
        if batch.is_empty() {
            return Ok(UpsertReport::default());
        }
        let mut pipe = redis::pipe();
        // Loading first makes the pipeline immune to an empty script cache
        // (a restarted Redis); it costs one command per batch.
        pipe.load_script(&UPSERT).ignore();
        let invocations = batch
            .iter()
            .map(|(customer, mode, tasks)| self.upsert_invocation(customer, *mode, tasks, now_ms))
            .collect::<Result<Vec<_>, _>>()?;
        for inv in &invocations {
            pipe.invoke_script(inv);
        }
        let mut conn = self.conn.clone();
        let rows: Vec<(u64, u64, u64)> = pipe.query_async(&mut conn).await?;
        let mut report = UpsertReport::default();
        for (c, u, r) in rows {
            report.created += c;
            report.updated += u;
            report.removed += r;
        }
        Ok(report)
    }

    /// Claims up to `batch` due tasks under a lease of `lease`.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "claim"))]
    pub async fn claim(
        &self,
        owner: &str,
        batch: usize,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut inv = self.invoke(&CLAIM, now_ms);
        inv.arg(batch).arg(owner).arg(lease.as_millis() as u64);
        let rows: Vec<Value> = self.run(&inv).await?;
        rows.into_iter().map(parse_claim).collect()
    }

    /// Returns tasks whose lease expired to the index; how many.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "reap"))]
    pub async fn reap(&self, batch: usize, now_ms: i64) -> Result<u64, StoreError> {
        let mut inv = self.invoke(&REAP, now_ms);
        inv.arg(batch);
        self.run(&inv).await
    }

    /// Dispatched tasks whose dispatch is older than `before_ms` (their
    /// outcome is overdue), oldest first, at most `limit`.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "overdue"))]
    pub async fn overdue(&self, before_ms: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("ZRANGE")
            .arg(self.key("dispatched"))
            .arg("-inf")
            .arg(before_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?)
    }

    /// Extends the leases of held tasks; returns the ids no longer held.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "renew"))]
    pub async fn renew(
        &self,
        held: &[(String, u64)],
        lease: Duration,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.invoke(&RENEW, now_ms);
        inv.arg(lease.as_millis() as u64);
        for (id, fence) in held {
            inv.arg(id).arg(fence);
        }
        self.run(&inv).await
    }

    /// Puts a claimed task back at `due_ms` because `reason`; false when
    /// the claim is no longer this holder's.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "reschedule"))]
    pub async fn reschedule(
        &self,
        id: &str,
        fence: u64,
        due_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut inv = self.invoke(&RESCHEDULE, now_ms);
        inv.arg(id).arg(fence).arg(due_ms).arg(reason);
        let done: i64 = self.run(&inv).await?;
        Ok(done == 1)
    }

    /// Publishes dial requests for claimed tasks, each at most once.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "dispatch"))]
    pub async fn dispatch(
        &self,
        items: &[Dispatch],
        cap: u32,
        cap_window: Duration,
        now_ms: i64,
    ) -> Result<Vec<Dispatched>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.invoke(&DISPATCH, now_ms);
        inv.arg(cap)
            .arg(cap_window.as_millis() as u64)
            .arg(items.len());
        for d in items {
            inv.arg(&d.id)
                .arg(d.fence)
                .arg(if d.capped { "1" } else { "0" })
                .arg(d.request.encode_to_vec())
                .arg(&d.agent_id)
                .arg(&d.request.idempotency_key);
        }
        let out: Vec<String> = self.run(&inv).await?;
        if out.len() != items.len() {
            return Err(StoreError::Corrupt(format!(
                "dispatch answered {} results for {} tasks",
                out.len(),
                items.len()
            )));
        }
        Ok(out
            .into_iter()
            .map(|r| match r.as_str() {
                "stale" => Dispatched::Stale,
                "expired" => Dispatched::Expired,
                "cap" => Dispatched::Capped,
                _ => Dispatched::Published(r),
            })
            .collect())
    }

    /// Applies an outcome to a dispatched task held under `fence`.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "outcome"))]
    pub async fn outcome(
        &self,
        id: &str,
        fence: u64,
        action: OutcomeAction,
        task: &pb::CareTask,
        now_ms: i64,
    ) -> Result<Result<(), OutcomeRefused>, StoreError> {
        let (name, due) = match action {
            OutcomeAction::Retry { due_ms } => ("retry", due_ms),
            OutcomeAction::Rearm { due_ms } => ("rearm", due_ms),
            OutcomeAction::Done => ("done", 0),
        };
        let mut inv = self.invoke(&OUTCOME, now_ms);
        inv.arg(id)
            .arg(fence)
            .arg(name)
            .arg(due)
            .arg(task.encode_to_vec());
        let answer: String = self.run(&inv).await?;
        Ok(match answer.as_str() {
            "ok" => Ok(()),
            "missing" => Err(OutcomeRefused::Missing),
            "fence" => Err(OutcomeRefused::StaleFence),
            other => Err(OutcomeRefused::NotDispatched(
                other.trim_start_matches("state:").to_owned(),
            )),
        })
    }

    /// Cancels a task not yet dispatched.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "cancel"))]
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Result<(), CancelRefused>, StoreError> {
        let mut inv = self.invoke(&CANCEL, now_ms);
        inv.arg(id).arg(reason);
        let answer: String = self.run(&inv).await?;
        Ok(match answer.as_str() {
            "ok" => Ok(()),
            "missing" => Err(CancelRefused::Missing),
            other => Err(CancelRefused::TooLate(
                other.trim_start_matches("state:").to_owned(),
            )),
        })
    }

    /// Reads one task.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "task"))]
    pub async fn task(&self, id: &str) -> Result<Option<Stored>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.key(&format!("task:{id}")))
            .arg(&STORED_FIELDS[..])
            .query_async(&mut conn)
            .await?;
        parse_stored(id, fields)
    }

    /// Every task of a customer still known, soonest first.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "tasks_of"))]
    pub async fn tasks_of(&self, customer: &str) -> Result<Vec<Stored>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key(&format!("cust:{customer}")))
            .query_async(&mut conn)
            .await?;
        let mut out = self.tasks(&ids).await?;
        out.sort_by(|a, b| a.due_ms.cmp(&b.due_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn tasks(&self, ids: &[String]) -> Result<Vec<Stored>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("task:{id}")))
                .arg(&STORED_FIELDS[..]);
        }
        let mut conn = self.conn.clone();
        let rows: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, fields) in ids.iter().zip(rows) {
            if let Some(t) = parse_stored(id, fields)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Pending tasks due before `before_ms`, oldest first: `offset` tasks
    /// skipped, at most `limit` returned, and whether more follow.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "list_due"))]
    pub async fn list_due(
        &self,
        before_ms: i64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool), StoreError> {
        let want = offset + limit + 1;
        let mut pipe = redis::pipe();
        for p in 0..=MAX_PRIORITY {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.key(&format!("due:{p}")))
                .arg("-inf")
                .arg(before_ms)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(want);
        }
        let mut conn = self.conn.clone();
        let sets: Vec<Vec<(String, f64)>> = pipe.query_async(&mut conn).await?;
        let mut all: Vec<(String, f64)> = sets.into_iter().flatten().collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let more = all.len() > offset + limit;
        let ids: Vec<String> = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(id, _)| id)
            .collect();
        Ok((self.tasks(&ids).await?, more))
    }

    /// Counts of pending (by due now or later), claimed and dispatched
    /// tasks, for gauges.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "counts"))]
    pub async fn counts(&self, now_ms: i64) -> Result<Counts, StoreError> {
        let mut pipe = redis::pipe();
        for p in 0..=MAX_PRIORITY {
            pipe.cmd("ZCOUNT")
                .arg(self.key(&format!("due:{p}")))
                .arg("-inf")
                .arg(now_ms);
        }
        for p in 0..=MAX_PRIORITY {
            pipe.cmd("ZCARD").arg(self.key(&format!("due:{p}")));
        }
        pipe.cmd("ZCARD").arg(self.key("leases"));
        pipe.cmd("XLEN").arg(self.dial_key());
        let mut conn = self.conn.clone();
        let v: Vec<u64> = pipe.query_async(&mut conn).await?;
        let due_now = v[..4].iter().sum();
        let pending = v[4..8].iter().sum();
        Ok(Counts {
            due_now,
            pending,
            claimed: v[8],
            unacknowledged: v[9],
        })
    }

    /// Acknowledges dial requests for `dialer`; how many were pending.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "ack"))]
    pub async fn ack(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = self.invoke(&ACK, 0);
        inv.arg(GROUP);
        for id in ids {
            inv.arg(id);
        }
        self.run(&inv).await
    }

    /// A reader of the dial stream with its own connection: blocking reads
    /// must not hold up the shared connection.
    pub async fn reader(&self, dialer: &str) -> Result<DialReader, StoreError> {
        // A dedicated connection, because XREADGROUP blocks it; its response
        // timeout must outlast the longest block (the default of 500 ms
        // would fail every idle read).
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(READER_RESPONSE_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(DialReader {
            conn,
            stream: self.dial_key(),
            consumer: dialer.to_owned(),
            store: self.clone(),
        })
    }

    /// Reads a small string value (feed position, markers).
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "get"))]
    pub async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(self.key(name))
            .query_async(&mut conn)
            .await?)
    }

    /// Writes a small string value.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "set"))]
    pub async fn set(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(self.key(name))
            .arg(value)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes or keeps a lock `name` for `owner` for `ttl`; true when held.
    /// Used so that one replica follows the profile change feed.
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "hold_lock"))]
    pub async fn hold_lock(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        static HOLD: LazyLock<Script> = LazyLock::new(|| {
            Script::new(
                "local v = redis.call('GET', KEYS[1])
                 if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
                 if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
                 return 0",
            )
        });
        let mut inv = HOLD.prepare_invoke();
        inv.key(self.key(name))
            .arg(owner)
            .arg(ttl.as_millis() as u64);
        let held: i64 = self.run(&inv).await?;
        Ok(held == 1)
    }

    /// Adds inbound contacts to the hour-of-week counters of their week.
    /// `slots` are (week number since the Unix epoch, hour of week 0..168).
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "count_inbound"))]
    pub async fn count_inbound(&self, slots: &[(i64, u32)]) -> Result<(), StoreError> {
        if slots.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (week, hour) in slots {
            let key = self.key(&format!("fc:{week}"));
            pipe.cmd("HINCRBY").arg(&key).arg(hour).arg(1).ignore();
            // A year of weeks is plenty for a weekly pattern.
            pipe.cmd("EXPIRE").arg(&key).arg(400 * 24 * 3600).ignore();
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The hour-of-week counters of the given weeks (missing weeks are
    /// all zero).
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "inbound_counts"))]
    pub async fn inbound_counts(&self, weeks: &[i64]) -> Result<Vec<[u64; 168]>, StoreError> {
        let mut pipe = redis::pipe();
        for week in weeks {
            pipe.cmd("HGETALL").arg(self.key(&format!("fc:{week}")));
        }
        let mut conn = self.conn.clone();
        let maps: Vec<std::collections::HashMap<u32, u64>> = pipe.query_async(&mut conn).await?;
        Ok(maps
            .into_iter()
            .map(|m| {
                let mut hours = [0u64; 168];
                for (h, n) in m {
                    if let Some(slot) = hours.get_mut(h as usize) {
                        *slot = n;
                    }
                }
                hours
            })
            .collect())
    }

    /// Deletes every hour-of-week counter in `weeks` (before a rebuild
    /// recounts them).
    #[tracing::instrument(name = "redis", skip_all, fields(db.system = "redis", db.operation = "clear_inbound"))]
    pub async fn clear_inbound(&self, weeks: &[i64]) -> Result<(), StoreError> {
        if weeks.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for week in weeks {
            cmd.arg(self.key(&format!("fc:{week}")));
        }
        let mut conn = self.conn.clone();
        let _: () = cmd.query_async(&mut conn).await?;
        Ok(())
    }
}

/// Task gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Pending and due now.
    pub due_now: u64,
    /// Pending in all.
    pub pending: u64,
    /// Held under a lease.
    pub claimed: u64,
    /// Dial requests not yet acknowledged by a dialer.
    pub unacknowledged: u64,
}

/// Reads dial requests for one dialer: first requests other dialers left
/// unacknowledged past the redelivery timeout, then new ones.
pub struct DialReader {
    conn: MultiplexedConnection,
    stream: String,
    consumer: String,
    store: Store,
}

impl DialReader {
    /// Up to `count` requests; blocks up to `block` when none are waiting.
    pub async fn next(
        &mut self,
        count: usize,
        block: Duration,
        redeliver_after: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        // Requests delivered but not acknowledged for too long: the dialer
        // that got them died or lost them. Claim them for this dialer.
        let reclaimed: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(redeliver_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn)
            .await?;
        let mut out = Vec::new();
        if let Value::Array(parts) = reclaimed
            && let Some(entries) = parts.into_iter().nth(1)
        {
            out.extend(parse_entries(entries, true)?);
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let read: Result<Value, redis::RedisError> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.min(MAX_READ_BLOCK).as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.conn)
            .await;
        let read = match read {
            Ok(v) => v,
            // The group vanished (Redis restarted empty): recreate it and
            // read again on the next call.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.store.ensure_group().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        // RESP2: [[stream, [entries]]]; RESP3 may answer a map.
        match read {
            Value::Nil => {}
            Value::Array(streams) => {
                for s in streams {
                    if let Value::Array(pair) = s
                        && let Some(entries) = pair.into_iter().nth(1)
                    {
                        out.extend(parse_entries(entries, false)?);
                    }
                }
            }
            Value::Map(streams) => {
                for (_, entries) in streams {
                    out.extend(parse_entries(entries, false)?);
                }
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "XREADGROUP answered {other:?}"
                )));
            }
        }
        Ok(out)
    }
}

fn parse_entries(entries: Value, redelivered: bool) -> Result<Vec<Delivery>, StoreError> {
    let Value::Array(entries) = entries else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        // [id, [field, value, ...]]; a deleted entry has a nil body.
        let Value::Array(mut parts) = entry else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let body = parts.pop();
        let id: String = redis::from_redis_value(parts.pop().unwrap_or(Value::Nil))?;
        let fields: Vec<Vec<u8>> = match body {
            Some(Value::Array(f)) => f
                .into_iter()
                .map(redis::from_redis_value)
                .collect::<Result<_, _>>()?,
            Some(Value::Map(m)) => m
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .map(redis::from_redis_value)
                .collect::<Result<_, _>>()?,
            _ => continue,
        };
        let mut req = None;
        for pair in fields.chunks(2) {
            if let [k, v] = pair
                && k.as_slice() == b"req"
            {
                req = Some(v);
            }
        }
        let Some(req) = req else {
            return Err(StoreError::Corrupt(format!(
                "dial entry {id} has no request"
            )));
        };
        let mut request = pb::DialRequest::decode(req.as_slice())
            .map_err(|e| StoreError::Corrupt(format!("dial entry {id}: {e}")))?;
        request.delivery_id = id;
        out.push(Delivery {
            request,
            redelivered,
        });
    }
    Ok(out)
}

const STORED_FIELDS: [&str; 13] = [
    "state", "due", "fence", "attempt", "cycle", "cust", "periodic", "data", "meta", "skip",
    "agent", "delivery", "prio",
];

fn text(v: &Option<Vec<u8>>) -> String {
    v.as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn number<T: std::str::FromStr + Default>(v: &Option<Vec<u8>>) -> T {
    text(v).parse().unwrap_or_default()
}

fn parse_stored(id: &str, f: Vec<Option<Vec<u8>>>) -> Result<Option<Stored>, StoreError> {
    if f.len() != STORED_FIELDS.len() {
        return Err(StoreError::Corrupt(format!("task {id}: short read")));
    }
    let Some(state) = f[0].as_deref() else {
        return Ok(None);
    };
    let state = TaskState::parse(&String::from_utf8_lossy(state))
        .ok_or_else(|| StoreError::Corrupt(format!("task {id}: bad state")))?;
    let task = pb::CareTask::decode(f[7].as_deref().unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(format!("task {id}: {e}")))?;
    let meta: Meta = serde_json::from_slice(f[8].as_deref().unwrap_or(b"{}"))
        .map_err(|e| StoreError::Corrupt(format!("task {id} meta: {e}")))?;
    Ok(Some(Stored {
        id: id.to_owned(),
        state,
        due_ms: number(&f[1]),
        fence: number(&f[2]),
        attempt: number(&f[3]),
        cycle: number(&f[4]),
        customer: text(&f[5]),
        periodic: text(&f[6]) == "1",
        task,
        meta,
        skip: text(&f[9]),
        agent_id: text(&f[10]),
        delivery: text(&f[11]),
    }))
}

fn parse_claim(row: Value) -> Result<Claimed, StoreError> {
    let Value::Array(parts) = row else {
        return Err(StoreError::Corrupt("claim row is not a list".into()));
    };
    if parts.len() != 7 {
        return Err(StoreError::Corrupt(format!(
            "claim row has {} fields",
            parts.len()
        )));
    }
    let mut it = parts.into_iter();
    let mut next = || it.next().unwrap_or(Value::Nil);
    let id: String = redis::from_redis_value(next())?;
    let fence: u64 = redis::from_redis_value(next())?;
    let data: Vec<u8> = redis::from_redis_value(next()).unwrap_or_default();
    let meta: Vec<u8> = redis::from_redis_value(next()).unwrap_or_default();
    let attempt: u32 = redis::from_redis_value(next())?;
    let cycle: u32 = redis::from_redis_value(next())?;
    let due_ms: i64 = redis::from_redis_value(next())?;
    let task = pb::CareTask::decode(data.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("task {id}: {e}")))?;
    let meta: Meta = if meta.is_empty() {
        Meta::default()
    } else {
        serde_json::from_slice(&meta)
            .map_err(|e| StoreError::Corrupt(format!("task {id} meta: {e}")))?
    };
    Ok(Claimed {
        id,
        fence,
        task,
        meta,
        attempt,
        cycle,
        due_ms,
    })
}
