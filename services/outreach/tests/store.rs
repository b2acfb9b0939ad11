//! The due index against a real Redis: batch claims, lease expiry and
//! return, fencing of a paused holder, exactly-once dispatch, redelivery of
//! unacknowledged dial requests, re-planning rules and outcomes.

use std::collections::HashSet;
use std::time::Duration;

use rapport_outreach::store::{
    Dispatch, Dispatched, Meta, NewTask, OutcomeAction, OutcomeRefused, Source, Store, TaskState,
    UpsertMode,
};
use rapport_proto as pb;
use rapport_testkit::redis::TestRedis;

const T0: i64 = 1_790_000_000_000;
const LEASE: Duration = Duration::from_secs(30);

async fn store(redis: &TestRedis) -> Store {
    let prefix = format!("{}:{{out}}:", rapport_testkit::unique("t"));
    Store::connect_with_prefix(redis.url(), &prefix)
        .await
        .expect("connects")
}

fn task(id: &str, customer: &str, due_ms: i64, priority: u32, periodic: bool) -> NewTask {
    NewTask {
        task: pb::CareTask {
            task_id: id.to_owned(),
            customer_id: customer.to_owned(),
            kind: pb::CareTaskKind::NeedCare as i32,
            priority,
            theme: "how is the product going".to_owned(),
            ..Default::default()
        },
        due_ms,
        periodic,
        source: Source::Plan,
        meta: Meta {
            max_attempts: 3,
            capped: true,
            ..Meta::default()
        },
    }
}

fn dispatch_of(c: &rapport_outreach::store::Claimed) -> Dispatch {
    Dispatch {
        id: c.id.clone(),
        fence: c.fence,
        capped: c.meta.capped,
        request: pb::DialRequest {
            idempotency_key: c.idempotency_key(),
            fencing_token: c.fence,
            customer_phone: "+8613800000000".to_owned(),
            task: Some(c.task.clone()),
            ..Default::default()
        },
        agent_id: String::new(),
    }
}

#[tokio::test]
async fn claims_in_batches_by_priority_then_due_time_and_never_twice() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    for i in 0..10 {
        s.upsert(
            &format!("c{i}"),
            UpsertMode::Add,
            &[task(
                &format!("t{i}"),
                &format!("c{i}"),
                T0 - 1000 + i,
                0,
                true,
            )],
            T0,
        )
        .await
        .expect("upsert");
    }
    // A later-due urgent task goes first; a task due in the future waits.
    s.upsert(
        "vip",
        UpsertMode::Add,
        &[task("urgent", "vip", T0, 3, false)],
        T0,
    )
    .await
    .expect("upsert");
    s.upsert(
        "later",
        UpsertMode::Add,
        &[task("later", "later", T0 + 60_000, 3, false)],
        T0,
    )
    .await
    .expect("upsert");

    let first = s.claim("a", 4, LEASE, T0).await.expect("claim");
    let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["urgent", "t0", "t1", "t2"]);
    let second = s.claim("b", 100, LEASE, T0).await.expect("claim");
    assert_eq!(second.len(), 7, "the rest of what is due, nothing twice");
    let all: HashSet<String> = first.iter().chain(&second).map(|c| c.id.clone()).collect();
    assert_eq!(all.len(), 11);
    assert!(!all.contains("later"));
    // Fencing tokens only grow.
    let mut fences: Vec<u64> = first.iter().chain(&second).map(|c| c.fence).collect();
    let sorted = {
        let mut f = fences.clone();
        f.sort_unstable();
        f
    };
    assert_eq!(fences, sorted);
    fences.dedup();
    assert_eq!(fences.len(), 11);
    assert!(
        s.claim("c", 100, LEASE, T0)
            .await
            .expect("claim")
            .is_empty()
    );
}

#[tokio::test]
async fn an_expired_lease_returns_the_task_and_fences_out_the_paused_holder() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    s.upsert("c1", UpsertMode::Add, &[task("t1", "c1", T0, 1, false)], T0)
        .await
        .expect("upsert");
    let paused = s.claim("a", 10, LEASE, T0).await.expect("claim").remove(0);

    // Before expiry nothing is reaped and nobody else can claim it.
    assert_eq!(s.reap(100, T0 + 29_000).await.expect("reap"), 0);
    assert!(
        s.claim("b", 10, LEASE, T0 + 29_000)
            .await
            .expect("claim")
            .is_empty()
    );

    // The holder stalls past its lease; another replica reaps and claims.
    let later = T0 + 31_000;
    assert_eq!(s.reap(100, later).await.expect("reap"), 1);
    let taken = s
        .claim("b", 10, LEASE, later)
        .await
        .expect("claim")
        .remove(0);
    assert!(taken.fence > paused.fence);

    // The paused holder wakes up: renewal, reschedule and dispatch refused.
    let lost = s
        .renew(&[(paused.id.clone(), paused.fence)], LEASE, later)
        .await
        .expect("renew");
    assert_eq!(lost, vec![paused.id.clone()]);
    assert!(
        !s.reschedule(&paused.id, paused.fence, later, "x", later)
            .await
            .expect("reschedule")
    );
    let late = s
        .dispatch(&[dispatch_of(&paused)], 0, Duration::from_secs(1), later)
        .await
        .expect("dispatch");
    assert_eq!(late, vec![Dispatched::Stale]);

    // The current holder dispatches exactly once.
    let ok = s
        .dispatch(&[dispatch_of(&taken)], 0, Duration::from_secs(1), later)
        .await
        .expect("dispatch");
    assert!(matches!(ok[0], Dispatched::Published(_)));
    let again = s
        .dispatch(&[dispatch_of(&taken)], 0, Duration::from_secs(1), later)
        .await
        .expect("dispatch");
    assert_eq!(again, vec![Dispatched::Stale]);

    // And an outcome with the paused holder's token is refused.
    let stale = s
        .outcome(
            &taken.id,
            paused.fence,
            OutcomeAction::Done,
            &taken.task,
            later,
        )
        .await
        .expect("outcome");
    assert_eq!(stale, Err(OutcomeRefused::StaleFence));
    s.outcome(
        &taken.id,
        taken.fence,
        OutcomeAction::Done,
        &taken.task,
        later,
    )
    .await
    .expect("outcome")
    .expect("applied");
    assert_eq!(
        s.task(&taken.id)
            .await
            .expect("read")
            .expect("exists")
            .state,
        TaskState::Done
    );
}

#[tokio::test]
async fn a_holder_past_its_lease_cannot_dispatch_even_before_anyone_reaps() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    s.upsert("c1", UpsertMode::Add, &[task("t1", "c1", T0, 1, false)], T0)
        .await
        .expect("upsert");
    let held = s.claim("a", 10, LEASE, T0).await.expect("claim").remove(0);
    let late = s
        .dispatch(
            &[dispatch_of(&held)],
            0,
            Duration::from_secs(1),
            T0 + 31_000,
        )
        .await
        .expect("dispatch");
    assert_eq!(late, vec![Dispatched::Expired]);
    // Renewal in time keeps it.
    let held2 = {
        s.reap(10, T0 + 31_000).await.expect("reap");
        s.claim("a", 10, LEASE, T0 + 31_000)
            .await
            .expect("claim")
            .remove(0)
    };
    let lost = s
        .renew(&[(held2.id.clone(), held2.fence)], LEASE, T0 + 50_000)
        .await
        .expect("renew");
    assert!(lost.is_empty());
    let ok = s
        .dispatch(
            &[dispatch_of(&held2)],
            0,
            Duration::from_secs(1),
            T0 + 70_000,
        )
        .await
        .expect("dispatch");
    assert!(matches!(ok[0], Dispatched::Published(_)));
}

#[tokio::test]
async fn unacknowledged_dial_requests_are_redelivered_and_acknowledged_ones_are_not() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    for i in 0..3 {
        s.upsert(
            &format!("c{i}"),
            UpsertMode::Add,
            &[task(&format!("t{i}"), &format!("c{i}"), T0, 1, false)],
            T0,
        )
        .await
        .expect("upsert");
    }
    let claimed = s.claim("a", 10, LEASE, T0).await.expect("claim");
    let items: Vec<Dispatch> = claimed.iter().map(dispatch_of).collect();
    let published = s
        .dispatch(&items, 0, Duration::from_secs(1), T0)
        .await
        .expect("dispatch");
    assert!(
        published
            .iter()
            .all(|d| matches!(d, Dispatched::Published(_)))
    );

    let mut first = s.reader("dialer-1").await.expect("reader");
    let got = first
        .next(10, Duration::from_millis(100), Duration::from_secs(60))
        .await
        .expect("read");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|d| !d.redelivered));
    let keys: HashSet<String> = got
        .iter()
        .map(|d| d.request.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 3);
    // Dialer 1 acknowledges one and dies with two in hand.
    assert_eq!(
        s.ack(&[got[0].request.delivery_id.clone()])
            .await
            .expect("ack"),
        1
    );
    assert_eq!(
        s.ack(&[got[0].request.delivery_id.clone()])
            .await
            .expect("ack"),
        0
    );

    let mut second = s.reader("dialer-2").await.expect("reader");
    // Nothing new, and the two are not yet overdue.
    let none = second
        .next(10, Duration::from_millis(50), Duration::from_secs(60))
        .await
        .expect("read");
    assert!(none.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = second
        .next(10, Duration::from_millis(50), Duration::from_millis(200))
        .await
        .expect("read");
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.redelivered));
    let redelivered: HashSet<String> = again
        .iter()
        .map(|d| d.request.idempotency_key.clone())
        .collect();
    assert!(!redelivered.contains(&got[0].request.idempotency_key));
    assert!(
        redelivered.is_subset(&keys),
        "same idempotency keys, so duplicates can be dropped"
    );
    let ids: Vec<String> = again
        .iter()
        .map(|d| d.request.delivery_id.clone())
        .collect();
    assert_eq!(s.ack(&ids).await.expect("ack"), 2);
    let after = second
        .next(10, Duration::from_millis(50), Duration::from_millis(1))
        .await
        .expect("read");
    assert!(after.is_empty());
}

#[tokio::test]
async fn replanning_never_moves_a_deferred_task_earlier_nor_replans_a_finished_one_shot() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    let soothe = |due| {
        let mut t = task("soothe:c1:1", "c1", due, 2, false);
        t.task.kind = pb::CareTaskKind::SoothingFollowUp as i32;
        t
    };
    let need = |due| task("need:c1:recognition", "c1", due, 1, true);
    s.upsert(
        "c1",
        UpsertMode::Replan,
        &[soothe(T0), need(T0 + 86_400_000)],
        T0,
    )
    .await
    .expect("upsert");

    // A check defers the follow-up to tomorrow morning; a re-plan at the
    // same moment must not bring it back to now.
    let c = s.claim("a", 10, LEASE, T0).await.expect("claim").remove(0);
    assert_eq!(c.id, "soothe:c1:1");
    let morning = T0 + 10 * 3_600_000;
    assert!(
        s.reschedule(&c.id, c.fence, morning, "outside_legal_hours", T0)
            .await
            .expect("rs")
    );
    s.upsert(
        "c1",
        UpsertMode::Replan,
        &[soothe(T0), need(T0 + 86_400_000)],
        T0,
    )
    .await
    .expect("upsert");
    let stored = s.task(&c.id).await.expect("read").expect("exists");
    assert_eq!(stored.due_ms, morning);
    assert_eq!(stored.skip, "outside_legal_hours");

    // Dispatched and done: a later re-plan does not plan it again.
    let c = s
        .claim("a", 10, LEASE, morning)
        .await
        .expect("claim")
        .remove(0);
    s.dispatch(
        &[dispatch_of(&c)],
        2,
        Duration::from_secs(30 * 86_400),
        morning,
    )
    .await
    .expect("dispatch");
    s.outcome(&c.id, c.fence, OutcomeAction::Done, &c.task, morning)
        .await
        .expect("outcome")
        .expect("applied");
    s.upsert(
        "c1",
        UpsertMode::Replan,
        &[soothe(morning + 1), need(T0 + 86_400_000)],
        morning + 1,
    )
    .await
    .expect("upsert");
    assert_eq!(
        s.task(&c.id).await.expect("read").expect("exists").state,
        TaskState::Done
    );
    assert!(
        s.claim("a", 10, LEASE, morning + 2)
            .await
            .expect("claim")
            .is_empty()
    );

    // A periodic task is re-armed for its next cycle, with a new
    // idempotency key.
    let day = T0 + 86_400_000;
    let n = s.claim("a", 10, LEASE, day).await.expect("claim").remove(0);
    let key1 = n.idempotency_key();
    s.dispatch(&[dispatch_of(&n)], 2, Duration::from_secs(30 * 86_400), day)
        .await
        .expect("dispatch");
    s.outcome(&n.id, n.fence, OutcomeAction::Done, &n.task, day)
        .await
        .expect("outcome")
        .expect("applied");
    s.upsert(
        "c1",
        UpsertMode::Replan,
        &[need(day + 30 * 86_400_000)],
        day + 1,
    )
    .await
    .expect("upsert");
    let next = s
        .claim("a", 10, LEASE, day + 30 * 86_400_000)
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(next.id, n.id);
    assert_ne!(next.idempotency_key(), key1);

    // A plan without the need any more drops its pending task.
    s.upsert("c1", UpsertMode::Replan, &[], day + 2)
        .await
        .expect("upsert");
    let plan = s.tasks_of("c1").await.expect("read");
    assert!(
        plan.iter()
            .all(|t| t.id != "need:c1:recognition" || t.state != TaskState::Pending)
    );
}

#[tokio::test]
async fn the_frequency_cap_holds_across_concurrent_dispatches() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    let tasks: Vec<NewTask> = (0..5)
        .map(|i| task(&format!("m{i}"), "c1", T0, 1, false))
        .collect();
    s.upsert("c1", UpsertMode::Add, &tasks, T0)
        .await
        .expect("upsert");
    let claimed = s.claim("a", 10, LEASE, T0).await.expect("claim");
    let items: Vec<Dispatch> = claimed.iter().map(dispatch_of).collect();
    let out = s
        .dispatch(&items, 2, Duration::from_secs(30 * 86_400), T0)
        .await
        .expect("dispatch");
    let published = out
        .iter()
        .filter(|d| matches!(d, Dispatched::Published(_)))
        .count();
    assert_eq!(published, 2);
    assert_eq!(out.iter().filter(|d| **d == Dispatched::Capped).count(), 3);
    // A callback the customer asked for is not capped.
    let mut cb = task("cb:call-1", "c1", T0, 3, false);
    cb.meta.capped = false;
    s.upsert("c1", UpsertMode::Add, &[cb], T0)
        .await
        .expect("upsert");
    let c = s.claim("a", 1, LEASE, T0).await.expect("claim").remove(0);
    assert_eq!(c.id, "cb:call-1");
    let out = s
        .dispatch(&[dispatch_of(&c)], 2, Duration::from_secs(30 * 86_400), T0)
        .await
        .expect("dispatch");
    assert!(matches!(out[0], Dispatched::Published(_)));
}

#[tokio::test]
async fn cancel_erase_and_outcome_preconditions() {
    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    s.upsert(
        "c1",
        UpsertMode::Add,
        &[task("a", "c1", T0, 1, false), task("b", "c1", T0, 1, false)],
        T0,
    )
    .await
    .expect("upsert");
    // An outcome for a task never dispatched is refused.
    let t = s.task("a").await.expect("read").expect("exists");
    let refused = s
        .outcome("a", 1, OutcomeAction::Done, &t.task, T0)
        .await
        .expect("outcome");
    assert_eq!(
        refused,
        Err(OutcomeRefused::NotDispatched("pending".into()))
    );
    s.cancel("a", "operator", T0)
        .await
        .expect("cancel")
        .expect("cancelled");
    let claimed = s.claim("x", 10, LEASE, T0).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "b");
    // Erasing the customer cancels even the claimed task: its dispatch is
    // refused.
    s.upsert("c1", UpsertMode::Erase, &[], T0)
        .await
        .expect("erase");
    let out = s
        .dispatch(&[dispatch_of(&claimed[0])], 0, Duration::from_secs(1), T0)
        .await
        .expect("dispatch");
    assert_eq!(out, vec![Dispatched::Stale]);
    assert!(s.cancel("missing", "x", T0).await.expect("cancel").is_err());
}

#[tokio::test]
async fn a_dispatched_call_without_an_outcome_is_retried_after_the_timeout() {
    use rapport_outreach::clock::ManualClock;
    use rapport_outreach::engine::Engine;
    use rapport_outreach::policy::{CarePolicy, PolicyHandle};

    let redis = TestRedis::start().expect("redis");
    let s = store(&redis).await;
    let policy = CarePolicy::load(None).expect("default policy");
    let timeout_ms = i64::from(policy.dispatch.outcome_timeout_minutes) * 60_000;
    let clock = ManualClock::at(chrono::DateTime::from_timestamp_millis(T0).expect("t0"));
    let deps = rapport_outreach::Deps::new(
        "http://127.0.0.1:9",
        "",
        Duration::from_secs(1),
        &rapport_kit::security::Security::insecure(),
    )
    .expect("deps");
    let engine = Engine::new(
        s.clone(),
        deps,
        PolicyHandle::new(policy.clone()),
        clock.clock(),
        "replica-a".into(),
        "default".into(),
        Duration::from_millis(50),
        4,
    );

    let mut t = task("lost", "c1", T0, 1, false);
    t.meta.retry_spacing_ms = 600_000;
    s.upsert("c1", UpsertMode::Add, &[t], T0)
        .await
        .expect("upsert");
    let claimed = s.claim("a", 10, LEASE, T0).await.expect("claim").remove(0);
    let sent = s
        .dispatch(&[dispatch_of(&claimed)], 0, Duration::from_secs(1), T0)
        .await
        .expect("dispatch");
    assert!(matches!(sent[0], Dispatched::Published(_)));

    // Before the timeout nothing happens: the dialer may still report.
    clock.advance(chrono::Duration::milliseconds(timeout_ms - 1_000));
    assert_eq!(engine.expire_outcomes(&policy).await.expect("expire"), 0);
    assert_eq!(
        s.task("lost").await.expect("task").expect("exists").state,
        TaskState::Dispatched
    );

    // After it the call counts as not answered: the next attempt is
    // planned with the task's spacing, and the old token is now stale.
    clock.advance(chrono::Duration::milliseconds(2_000));
    let now = T0 + timeout_ms + 1_000;
    assert_eq!(engine.expire_outcomes(&policy).await.expect("expire"), 1);
    let retried = s.task("lost").await.expect("task").expect("exists");
    assert_eq!(retried.state, TaskState::Pending);
    assert_eq!(retried.attempt, 1);
    assert_eq!(retried.due_ms, now + 600_000);
    assert_eq!(
        engine.expire_outcomes(&policy).await.expect("expire"),
        0,
        "once"
    );
    let late = s
        .outcome(
            "lost",
            claimed.fence,
            OutcomeAction::Done,
            &claimed.task,
            now,
        )
        .await
        .expect("outcome");
    assert!(
        late.is_err(),
        "a late outcome for the expired dispatch is refused"
    );
}
