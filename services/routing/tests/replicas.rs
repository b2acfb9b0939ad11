//! Three routing replicas (three independent connections, as three
//! processes would have) under 500 concurrent contacts against 50 agents:
//! exactly 50 reservations at first, every contact served exactly once as
//! agents complete and take queued contacts concurrently, and in the
//! reservation history Redis records every agent strictly alternates
//! reserve and release.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use rapport_routing::state::{LiveState, Placement};
use rapport_testkit::redis::TestRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_500_contacts_50_agents() {
    let redis = TestRedis::start().expect("redis");
    let replicas: Vec<LiveState> = vec![live(&redis).await, live(&redis).await, live(&redis).await];
    let c = center();
    for i in 0..50 {
        login_ready(
            &replicas[i % 3],
            &c,
            &agent(&format!("a{i}"), 5.0 + (i % 5) as f64, &[], &[]),
            1,
        )
        .await;
    }
    let mut tasks = Vec::new();
    for n in 0..500 {
        let state = replicas[n % 3].clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            route(
                &state,
                &c,
                &format!("call-{n}"),
                "wealth",
                0.0,
                1_000 + n as i64,
            )
            .await
        }));
    }
    let mut assigned = Vec::new();
    let mut queued = 0;
    for t in tasks {
        match t.await.expect("task") {
            Placement::Assigned { agent_id, .. } => assigned.push(agent_id),
            Placement::Queued { .. } => queued += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(assigned.len(), 50, "exactly 50 reservations");
    assert_eq!(
        assigned.iter().collect::<HashSet<_>>().len(),
        50,
        "no agent twice"
    );
    assert_eq!(queued, 450);

    // Drain: each agent completes what it holds (through any replica) and
    // takes the next queued contact, all agents at once.
    let mut workers = Vec::new();
    for i in 0..50 {
        let replicas = replicas.clone();
        let c = c.clone();
        workers.push(tokio::spawn(async move {
            let id = format!("a{i}");
            let mut served = Vec::new();
            let mut now = 10_000;
            loop {
                let state = &replicas[(i + served.len()) % 3];
                let snapshot = state.agent(&c, &id).await.expect("agent");
                let Some(held) = snapshot.held.first() else {
                    break;
                };
                served.push(held.call_id.clone());
                now += 1;
                state
                    .complete(&c, &held.call_id, &id, 0, false, now)
                    .await
                    .expect("complete");
            }
            served
        }));
    }
    let mut served = Vec::new();
    for w in workers {
        served.extend(w.await.expect("worker"));
    }
    assert_eq!(served.len(), 500, "every contact served");
    assert_eq!(
        served.iter().collect::<HashSet<_>>().len(),
        500,
        "each exactly once"
    );

    // The recorded history: per agent reserve, release, reserve, release…
    let h = history(&redis, &c).await;
    let mut open: HashMap<String, Option<String>> = HashMap::new();
    let mut reserves = 0;
    for (event, agent, call) in &h {
        let slot = open.entry(agent.clone()).or_default();
        match (event.as_str(), slot.as_ref()) {
            ("reserve", None) => {
                *slot = Some(call.clone());
                reserves += 1;
            }
            ("release", Some(held)) if held == call => *slot = None,
            other => panic!("{agent}: {other:?} breaks the alternation"),
        }
    }
    assert_eq!(reserves, 500);
    assert!(
        open.values().all(Option::is_none),
        "every reservation released"
    );
}
