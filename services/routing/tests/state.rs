//! The live-state module against a real redis-server: reservations,
//! queueing, the agent state machine and concurrency.

mod common;

use std::collections::HashSet;

use common::*;
use rapport_routing::groups::agent_groups;
use rapport_routing::state::{Placement, Presence, StateError, Status, Target};
use rapport_testkit::redis::TestRedis;

#[tokio::test]
async fn the_reference_group_picks_the_vip_minnan_agent() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("lin", 9.6, &["minnan"], &["vip"]), 1).await;
    login_ready(&state, &c, &agent("wang", 9.9, &[], &["vip"]), 2).await;
    login_ready(&state, &c, &agent("chen", 9.8, &["minnan"], &[]), 3).await;
    login_ready(&state, &c, &agent("zhao", 9.4, &["minnan"], &["vip"]), 4).await;

    let candidates = state
        .candidates(&c, 1, "wealth|p:vip|d:minnan", 9.5, 16, &[])
        .await
        .expect("candidates");
    assert_eq!(candidates.eligible, 1, "zhao is below 9.5");
    let placed = route(&state, &c, "call-1", "wealth|p:vip|d:minnan", 9.5, 10).await;
    assert_eq!(
        placed,
        Placement::Assigned {
            agent_id: "lin".into(),
            ranked: true,
            offer_id: "call-1:1".into(),
        }
    );
    let lin = state.agent(&c, "lin").await.expect("agent");
    assert_eq!(lin.status(), Status::Reserved);
    assert_eq!(lin.call_id(), "call-1");
    // Lin left every idle index.
    let anywhere = state
        .candidates(&c, 1, "wealth", 0.0, 16, &[])
        .await
        .expect("candidates");
    assert!(anywhere.list.iter().all(|c| c.agent_id != "lin"));
}

#[tokio::test]
async fn a_queued_contact_is_taken_the_moment_a_qualified_agent_turns_ready() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let lin = agent("lin", 9.6, &["minnan"], &["vip"]);
    login(&state, &c, &lin, false, 1).await;

    let group = "wealth|p:vip|d:minnan";
    assert_eq!(
        route(&state, &c, "early", group, 9.5, 10).await,
        Placement::Queued { position: 1 }
    );
    assert_eq!(
        route(&state, &c, "late", group, 9.5, 20).await,
        Placement::Queued { position: 2 }
    );
    let queued = state.call(&c, "late").await.expect("call");
    assert_eq!(queued.get("status"), "queued");
    assert_eq!(queued.queue_position, Some(2));

    // An unqualified agent turning ready takes nothing.
    let zhao = agent("zhao", 9.0, &["minnan"], &["vip"]);
    let change = login(&state, &c, &zhao, true, 25).await;
    assert_eq!(change.presence, Presence::Ready);
    assert_eq!(change.assigned_call, None);

    let change = state
        .set_status(&c, "lin", Target::Ready, 30)
        .await
        .expect("ready");
    assert_eq!(change.presence, Presence::Ready);
    assert_eq!(
        change.assigned_call.as_deref(),
        Some("early"),
        "oldest first"
    );
    let early = state.call(&c, "early").await.expect("call");
    assert_eq!(early.get("status"), "offered");
    assert_eq!(early.get("agent_id"), "lin");
    assert_eq!(early.get_i64("queue_wait_ms"), 20);

    // Completing hands lin the next one.
    let done = state
        .complete(&c, "early", "lin", 0, false, 40)
        .await
        .expect("complete");
    assert!(!done.already_completed);
    assert_eq!(done.agent.assigned_call.as_deref(), Some("late"));
    // With nothing queued, the next completion leaves her idle and indexed.
    let done = state
        .complete(&c, "late", "lin", 0, false, 50)
        .await
        .expect("complete");
    assert_eq!(done.agent.presence, Presence::Ready);
    assert_eq!(done.agent.assigned_call, None);
    let candidates = state
        .candidates(&c, 1, group, 9.5, 16, &[])
        .await
        .expect("candidates");
    assert_eq!(candidates.list.len(), 1);
    assert_eq!(candidates.list[0].idle_since_ms, 50);
}

#[tokio::test]
async fn a_repeated_call_id_is_not_placed_twice() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 8.0, &[], &[]), 1).await;
    login_ready(&state, &c, &agent("a2", 7.0, &[], &[]), 1).await;
    let first = route(&state, &c, "call-1", "wealth", 5.0, 10).await;
    assert!(matches!(first, Placement::Assigned { .. }));
    let again = route(&state, &c, "call-1", "wealth", 5.0, 11).await;
    assert_eq!(
        again,
        Placement::Existing {
            status: "offered".into()
        }
    );
    let a2 = state.agent(&c, "a2").await.expect("agent");
    assert_eq!(a2.status(), Status::Ready, "the retry reserved nobody");
}

#[tokio::test]
async fn a_stale_ranked_candidate_is_skipped_atomically() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    login_ready(&state, &c, &agent("a2", 8.0, &[], &[]), 2).await;
    // Both contacts read the same candidate list before either reserves.
    let candidates = state
        .candidates(&c, 1, "wealth", 0.0, 16, &[])
        .await
        .expect("candidates");
    let ranked: Vec<String> = candidates.list.into_iter().map(|c| c.agent_id).collect();
    assert_eq!(ranked, ["a1", "a2"]);
    let first = state
        .place(&c, &call("x", "wealth", 0.0), &ranked, true, 5)
        .await
        .expect("place");
    let second = state
        .place(&c, &call("y", "wealth", 0.0), &ranked, true, 5)
        .await
        .expect("place");
    assert_eq!(
        first,
        Placement::Assigned {
            agent_id: "a1".into(),
            ranked: true,
            offer_id: "x:1".into(),
        }
    );
    assert_eq!(
        second,
        Placement::Assigned {
            agent_id: "a2".into(),
            ranked: true,
            offer_id: "y:1".into(),
        }
    );
    // A third contact with a stale list gets a fresh agent from the index or
    // queues; here nobody is left.
    let third = state
        .place(&c, &call("z", "wealth", 0.0), &ranked, true, 5)
        .await
        .expect("place");
    assert_eq!(third, Placement::Queued { position: 1 });
}

#[tokio::test]
async fn the_state_machine_refuses_illegal_moves_and_writes_nothing() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let err = state
        .set_status(&c, "ghost", Target::Ready, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound(_)), "{err:?}");

    let a = agent("a1", 9.0, &[], &[]);
    login_ready(&state, &c, &a, 1).await;
    state
        .set_status(&c, "a1", Target::LoggedOut, 2)
        .await
        .expect("logout");
    let err = state
        .set_status(&c, "a1", Target::Ready, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
    let snapshot = state.agent(&c, "a1").await.expect("agent");
    assert_eq!(snapshot.status(), Status::LoggedOut);
    let idle = state
        .candidates(&c, 1, "wealth", 0.0, 16, &[])
        .await
        .expect("candidates");
    assert!(idle.list.is_empty(), "a logged-out agent is not idle");

    // Logging in again, reserving, then illegal moves while holding a call.
    login_ready(&state, &c, &a, 4).await;
    route(&state, &c, "call-1", "wealth", 0.0, 5).await;
    let before = dump(&redis, &c).await;
    let err = state
        .set_status(&c, "a1", Target::LoggedOut, 6)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
    let err = state
        .login(&c, &a, &agent_groups(&a, RISK_POOL), &capacity(&a), true, 6)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
    let b = agent("b1", 9.0, &[], &[]);
    login_ready(&state, &c, &b, 6).await;
    let before_b = dump(&redis, &c).await;
    let err = state
        .complete(&c, "call-1", "b1", 0, false, 7)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
    let err = state
        .complete(&c, "nope", "a1", 0, false, 7)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound(_)), "{err:?}");
    assert_eq!(dump(&redis, &c).await, before_b, "rejections write nothing");
    assert!(before.len() < before_b.len(), "b1's login wrote its keys");
    assert_eq!(
        state.agent(&c, "a1").await.expect("agent").status(),
        Status::Reserved
    );
    assert_eq!(
        state.agent(&c, "b1").await.expect("agent").status(),
        Status::Ready
    );

    // Completing twice is harmless.
    state
        .complete(&c, "call-1", "a1", 0, false, 8)
        .await
        .expect("complete");
    let again = state
        .complete(&c, "call-1", "a1", 0, false, 9)
        .await
        .expect("repeat");
    assert!(again.already_completed);
}

#[tokio::test]
async fn relogin_replaces_the_indexes() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &["minnan"], &["vip"]), 1).await;
    login_ready(&state, &c, &agent("a1", 7.0, &[], &[]), 2).await;
    let vip = state
        .candidates(&c, 1, "wealth|p:vip", 0.0, 16, &[])
        .await
        .expect("candidates");
    assert!(vip.list.is_empty(), "old pool index removed");
    let plain = state
        .candidates(&c, 1, "wealth", 0.0, 16, &[])
        .await
        .expect("candidates");
    assert_eq!(plain.list.len(), 1);
    assert_eq!(plain.list[0].score, 7.0);
}

/// 200 contacts placed concurrently through two independent connections
/// (as two routing replicas would) against 20 ready agents: exactly 20
/// assignments, no agent twice, the rest queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_placements_never_double_book() {
    let redis = TestRedis::start().expect("redis");
    let replicas = [live(&redis).await, live(&redis).await];
    let c = center();
    for i in 0..20 {
        login_ready(
            &replicas[0],
            &c,
            &agent(&format!("a{i}"), 5.0 + (i % 5) as f64, &[], &[]),
            i,
        )
        .await;
    }
    let mut tasks = Vec::new();
    for n in 0..200 {
        let state = replicas[n % 2].clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            route(
                &state,
                &c,
                &format!("call-{n}"),
                "wealth",
                0.0,
                100 + n as i64,
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
    let distinct: HashSet<_> = assigned.iter().collect();
    assert_eq!(assigned.len(), 20, "exactly one contact per agent");
    assert_eq!(distinct.len(), 20, "no agent twice");
    assert_eq!(queued, 180);
}
