//! Helpers shared by the live-state integration tests: a private Redis, a
//! center per test, agents, and RouteCall's read-rank-place sequence with an
//! injected clock.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use rapport_proto::{AgentKind, AgentProfile, AgentTraits, ChannelCapacity};
use rapport_routing::groups::agent_groups;
use rapport_routing::policy::{DEFAULT_POLICY, RoutingPolicy};
use rapport_routing::ranking::{Context, rank};
use rapport_routing::state::{Center, LiveState, NewCall, Placement, StatusChange, Tunables};
use rapport_testkit::redis::TestRedis;

pub const RISK_POOL: &str = "complaints";
pub const OFFER_MS: i64 = 15_000;

pub fn policy() -> RoutingPolicy {
    RoutingPolicy::parse(DEFAULT_POLICY).expect("default policy")
}

pub fn tunables() -> Tunables {
    rapport_routing::tunables(&policy(), None)
}

pub async fn live(redis: &TestRedis) -> LiveState {
    LiveState::connect(redis.url(), tunables())
        .await
        .expect("connects to redis")
}

pub fn center() -> Center {
    Center::new(&rapport_testkit::unique("cc-"))
}

pub fn agent(id: &str, wealth: f64, dialects: &[&str], pools: &[&str]) -> AgentProfile {
    AgentProfile {
        agent_id: id.into(),
        name: format!("Agent {id}"),
        kind: AgentKind::Desk as i32,
        skills: [("wealth".to_owned(), wealth)].into_iter().collect(),
        languages: vec!["zh".into()],
        dialects: dialects.iter().map(|s| s.to_string()).collect(),
        pools: pools.iter().map(|s| s.to_string()).collect(),
        traits: Some(AgentTraits {
            empathy: 5.0,
            de_escalation: 5.0,
        }),
        ..Default::default()
    }
}

/// Voice 1 only, unless the agent declares capacity.
pub fn capacity(a: &AgentProfile) -> Vec<(i32, u32)> {
    if a.capacity.is_empty() {
        vec![(1, 1)]
    } else {
        a.capacity
            .iter()
            .map(|c: &ChannelCapacity| (c.channel, c.max))
            .collect()
    }
}

pub async fn login(
    state: &LiveState,
    c: &Center,
    a: &AgentProfile,
    ready: bool,
    now: i64,
) -> StatusChange {
    state
        .login(c, a, &agent_groups(a, RISK_POOL), &capacity(a), ready, now)
        .await
        .expect("login")
}

pub async fn login_ready(state: &LiveState, c: &Center, a: &AgentProfile, now: i64) {
    login(state, c, a, true, now).await;
}

pub fn call<'a>(id: &'a str, group: &'a str, min: f64) -> NewCall<'a> {
    NewCall {
        call_id: id,
        channel: 1,
        group,
        min_score: min,
        steps: Vec::new(),
        fields: vec![("customer_id", b"c1".to_vec())],
    }
}

/// Reads candidates, ranks them and places the contact, as RouteCall does.
pub async fn place(state: &LiveState, c: &Center, new: &NewCall<'_>, now: i64) -> Placement {
    let candidates = state
        .candidates(c, new.channel, new.group, new.min_score, 16, &[])
        .await
        .expect("candidates");
    let ctx = Context {
        skill: "wealth".into(),
        now_ms: now,
        ..Default::default()
    };
    let ranked: Vec<String> = rank(candidates.list, &ctx, &policy().ranking)
        .into_iter()
        .map(|r| r.candidate.agent_id)
        .collect();
    state
        .place(c, new, &ranked, true, now)
        .await
        .expect("place")
}

pub async fn route(
    state: &LiveState,
    c: &Center,
    id: &str,
    group: &str,
    min: f64,
    now: i64,
) -> Placement {
    place(state, c, &call(id, group, min), now).await
}

pub fn offer_of(p: &Placement) -> String {
    match p {
        Placement::Assigned { offer_id, .. } => offer_id.clone(),
        other => panic!("not assigned: {other:?}"),
    }
}

pub fn agent_of(p: &Placement) -> String {
    match p {
        Placement::Assigned { agent_id, .. } => agent_id.clone(),
        other => panic!("not assigned: {other:?}"),
    }
}

/// Every key of the center with its value, to prove a rejected operation
/// wrote nothing.
pub async fn dump(redis: &TestRedis, c: &Center) -> HashMap<String, String> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}*",
            c.prefix().replace('{', "\\{").replace('}', "\\}")
        ))
        .query_async(&mut conn)
        .await
        .expect("keys");
    let mut out = HashMap::new();
    for key in keys {
        let value: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("dump");
        out.insert(key, format!("{value:?}"));
    }
    out
}

/// The reservation history of the center: (event, agent, call).
pub async fn history(redis: &TestRedis, c: &Center) -> Vec<(String, String, String)> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(c.history())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("xrange");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let get = |k: &str| e.get::<String>(k).unwrap_or_default();
            (get("ev"), get("agent"), get("call"))
        })
        .collect()
}

pub const SECOND: i64 = 1000;

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
