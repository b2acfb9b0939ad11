//! A state-machine property test against a real redis-server: random
//! sequences of login / ready / not-ready / route / accept / reject /
//! expire / complete / abandon / replica restart, with the invariants of
//! issue 3 checked against Redis after every step:
//! - an agent holds at most its capacity per channel;
//! - a contact is in exactly one state, and where that state says (one
//!   queue, or held by exactly one agent, or nowhere);
//! - no agent is reserved twice for one contact, no contact held twice;
//! - an agent is in the idle index iff it can take a contact there;
//! - after expiry no offer is pending past its deadline;
//! - queued contacts survive a replica restart.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rapport_proto::ChannelCapacity;
use rapport_routing::state::{Center, LiveState, NewCall, Target};
use rapport_testkit::redis::TestRedis;
use redis::AsyncCommands as _;

const AGENTS: usize = 3;
const CALLS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Login(usize, bool),
    Ready(usize),
    NotReady(usize),
    Route(usize, bool),
    Accept(usize),
    Reject(usize),
    Expire,
    Complete(usize),
    Abandon(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AGENTS;
    let c = 0..CALLS;
    prop_oneof![
        1 => (a.clone(), any::<bool>()).prop_map(|(a, r)| Op::Login(a, r)),
        1 => a.clone().prop_map(Op::Ready),
        1 => a.clone().prop_map(Op::NotReady),
        3 => (c.clone(), any::<bool>()).prop_map(|(c, chat)| Op::Route(c, chat)),
        2 => a.clone().prop_map(Op::Accept),
        1 => a.clone().prop_map(Op::Reject),
        1 => Just(Op::Expire),
        2 => a.clone().prop_map(Op::Complete),
        1 => c.prop_map(Op::Abandon),
        1 => Just(Op::Restart),
    ]
}

fn profile(i: usize) -> rapport_proto::AgentProfile {
    let mut a = agent(&format!("a{i}"), 5.0 + i as f64, &[], &[]);
    // a0 voice only; the others also chat, two at a time.
    a.capacity = vec![ChannelCapacity { channel: 1, max: 1 }];
    if i > 0 {
        a.capacity.push(ChannelCapacity { channel: 2, max: 2 });
    }
    a
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

async fn check(
    conn: &mut redis::aio::MultiplexedConnection,
    c: &Center,
    now: i64,
    after_expire: bool,
) -> Result<(), TestCaseError> {
    let p = c.prefix();
    let mut holder: HashMap<String, String> = HashMap::new();
    for i in 0..AGENTS {
        let id = format!("a{i}");
        let a: HashMap<String, String> = conn
            .hgetall(format!("{p}agent:{id}"))
            .await
            .map_err(|e| fail(e.to_string()))?;
        if a.is_empty() {
            continue;
        }
        let held: HashMap<String, String> = conn
            .hgetall(format!("{p}agent:{id}:calls"))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut per_channel: HashMap<String, u32> = HashMap::new();
        for (call, ch) in &held {
            *per_channel.entry(ch.clone()).or_default() += 1;
            if let Some(other) = holder.insert(call.clone(), id.clone()) {
                return Err(fail(format!("{call} held by {other} and {id}")));
            }
        }
        let num = |k: &str| a.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        for ch in ["1", "2"] {
            let load = per_channel.get(ch).copied().unwrap_or(0);
            prop_assert!(
                load <= num(&format!("cap:{ch}")),
                "{id} over capacity on {ch}"
            );
            prop_assert_eq!(load, num(&format!("load:{ch}")), "{} load:{} field", id, ch);
            // Indexed iff available.
            let total: u32 = per_channel.values().sum();
            let available = a.get("status").map(String::as_str) == Some("ready")
                && load < num(&format!("cap:{ch}"))
                && if ch == "1" {
                    total == 0
                } else {
                    per_channel.get("1").copied().unwrap_or(0) == 0
                };
            let indexed: Option<f64> = conn
                .zscore(format!("{p}idle:{ch}:wealth"), &id)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if num(&format!("cap:{ch}")) > 0 {
                prop_assert_eq!(
                    indexed.is_some(),
                    available,
                    "{} idle index on channel {}",
                    id,
                    ch
                );
            }
        }
    }
    for n in 0..CALLS {
        let call = format!("c{n}");
        let h: HashMap<String, String> = conn
            .hgetall(format!("{p}call:{call}"))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let Some(status) = h.get("status") else {
            continue;
        };
        let mut queues = 0;
        for ch in ["1", "2"] {
            for g in ["wealth"] {
                let r: Option<u64> = conn
                    .zrank(format!("{p}queue:{ch}:{g}"), &call)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                queues += usize::from(r.is_some());
            }
        }
        let held_by = holder.get(&call);
        match status.as_str() {
            "queued" => {
                prop_assert_eq!(queues, 1, "{} queued in one queue", call);
                prop_assert!(held_by.is_none(), "{call} queued and held");
            }
            "offered" | "connected" => {
                prop_assert_eq!(queues, 0, "{} held and queued", call);
                prop_assert_eq!(held_by, h.get("agent_id"), "{} holder", call);
                if status == "offered" && after_expire {
                    let expires: i64 = h
                        .get("offer_expires_ms")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    prop_assert!(expires > now, "{call} offer past its deadline after expiry");
                }
            }
            "completed" | "abandoned" | "callback" => {
                prop_assert_eq!(queues, 0, "{} terminal and queued", call);
                prop_assert!(held_by.is_none(), "{call} terminal and held");
            }
            other => return Err(fail(format!("{call} in state {other}"))),
        }
    }
    for call in holder.keys() {
        let status: Option<String> = conn
            .hget(format!("{p}call:{call}"), "status")
            .await
            .map_err(|e| fail(e.to_string()))?;
        prop_assert!(
            matches!(status.as_deref(), Some("offered" | "connected")),
            "{call} held in {status:?}"
        );
    }
    Ok(())
}

async fn queued(conn: &mut redis::aio::MultiplexedConnection, c: &Center) -> HashSet<String> {
    let mut out = HashSet::new();
    for ch in ["1", "2"] {
        let ids: Vec<String> = conn
            .zrange(format!("{}queue:{ch}:wealth", c.prefix()), 0, -1)
            .await
            .unwrap_or_default();
        out.extend(ids);
    }
    out
}

async fn run_case(url: &str, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let c = center();
    let mut state = LiveState::connect(url, tunables())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let client = redis::Client::open(url).map_err(|e| fail(e.to_string()))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut now: i64 = 1_000_000;
    for op in ops {
        now += 1;
        let mut after_expire = false;
        // Errors (not found, failed precondition) are legal answers to
        // illegal moves; only the invariants matter.
        match op {
            Op::Login(i, ready) => {
                let a = profile(i);
                let _ = state
                    .login(
                        &c,
                        &a,
                        &rapport_routing::groups::agent_groups(&a, RISK_POOL),
                        &capacity(&a),
                        ready,
                        now,
                    )
                    .await;
            }
            Op::Ready(i) => {
                let _ = state
                    .set_status(&c, &format!("a{i}"), Target::Ready, now)
                    .await;
            }
            Op::NotReady(i) => {
                let _ = state
                    .set_status(&c, &format!("a{i}"), Target::NotReady, now)
                    .await;
            }
            Op::Route(n, chat) => {
                let id = format!("c{n}");
                let new = NewCall {
                    channel: if chat { 2 } else { 1 },
                    ..call(&id, "wealth", 0.0)
                };
                let ranked: Vec<String> = state
                    .candidates(&c, new.channel, "wealth", 0.0, 16, &[])
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .list
                    .into_iter()
                    .map(|c| c.agent_id)
                    .collect();
                state
                    .place(&c, &new, &ranked, true, now)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
            Op::Accept(i) | Op::Reject(i) => {
                let accept = matches!(op, Op::Accept(_));
                let id = format!("a{i}");
                let offer = match state.agent(&c, &id).await {
                    Ok(a) => a
                        .held
                        .iter()
                        .find(|h| h.status == "offered")
                        .map(|h| h.offer_id.clone()),
                    Err(_) => None,
                };
                let offer = offer.unwrap_or_else(|| "c0:1".to_owned());
                let _ = state.answer_offer(&c, &id, &offer, accept, now).await;
            }
            Op::Expire => {
                now += OFFER_MS;
                state
                    .sweep(&c, now, 1000)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                after_expire = true;
            }
            Op::Complete(i) => {
                let id = format!("a{i}");
                if let Ok(a) = state.agent(&c, &id).await
                    && let Some(h) = a.held.first()
                {
                    state
                        .complete(&c, &h.call_id, &id, 4, false, now)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            Op::Abandon(n) => {
                let _ = state.abandon(&c, &format!("c{n}"), now).await;
            }
            Op::Restart => {
                // A routing replica dies and another starts: nothing queued
                // may be lost.
                let before = queued(&mut conn, &c).await;
                drop(state);
                state = LiveState::connect(url, tunables())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let after = queued(&mut conn, &c).await;
                prop_assert_eq!(before, after, "queued contacts survive a restart");
            }
        }
        check(&mut conn, &c, now, after_expire).await?;
    }
    Ok(())
}

#[test]
fn random_operation_sequences_keep_the_invariants() {
    let redis = TestRedis::start().expect("redis");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let url = redis.url().to_owned();
    runner
        .run(&prop::collection::vec(op(), 1..60), |ops| {
            rt.block_on(run_case(&url, ops))
        })
        .expect("invariants hold");
}
