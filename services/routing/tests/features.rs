//! Each personalized-routing feature against a real redis-server, with time
//! injected: offers (accept, reject, expiry, misses), widening, wrap-up,
//! multichannel capacity, field managers, callbacks, abandonment, learning
//! from CSAT, queue statistics and outbound preference.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use rapport_proto::{AgentKind, ChannelCapacity};
use rapport_routing::state::{
    FieldPlacement, Handoff, NewCall, OfferAnswer, Placement, Presence, StateError, Status, Target,
    Visit,
};
use rapport_testkit::redis::TestRedis;

#[tokio::test]
async fn offers_are_accepted_once_and_only_by_their_agent() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    login_ready(&state, &c, &agent("b1", 8.0, &[], &[]), 1).await;
    let placed = route(&state, &c, "call-1", "wealth", 5.0, 10).await;
    let offer = offer_of(&placed);
    assert_eq!(agent_of(&placed), "a1");

    let before = dump(&redis, &c).await;
    let err = state
        .answer_offer(&c, "b1", &offer, true, 11)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::FailedPrecondition(ref m) if m.contains("another agent")),
        "{err:?}"
    );
    let err = state
        .answer_offer(&c, "a1", "call-1:7", true, 11)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound(_)), "{err:?}");
    let err = state
        .answer_offer(&c, "ghost", &offer, true, 11)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound(_)), "{err:?}");
    assert_eq!(dump(&redis, &c).await, before, "rejections write nothing");

    assert_eq!(
        state
            .answer_offer(&c, "a1", &offer, true, 12)
            .await
            .expect("accept"),
        OfferAnswer::Accepted
    );
    assert_eq!(
        state
            .answer_offer(&c, "a1", &offer, true, 13)
            .await
            .expect("again"),
        OfferAnswer::AlreadyAccepted
    );
    let a1 = state.agent(&c, "a1").await.expect("agent");
    assert_eq!(a1.status(), Status::Busy);
    assert_eq!(
        state.call(&c, "call-1").await.expect("call").get("status"),
        "connected"
    );
    // A connected contact no longer expires.
    let report = state
        .sweep(&c, 10 + OFFER_MS + 1, 100)
        .await
        .expect("sweep");
    assert_eq!(report.expired, 0);
}

#[tokio::test]
async fn an_expired_offer_returns_the_agent_and_reroutes_the_contact() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    let placed = route(&state, &c, "call-1", "wealth", 5.0, 10).await;
    let offer = offer_of(&placed);
    // Nothing is due before the timeout.
    assert_eq!(
        state
            .sweep(&c, 10 + OFFER_MS - 1, 100)
            .await
            .expect("sweep")
            .expired,
        0
    );
    login_ready(&state, &c, &agent("b1", 8.0, &[], &[]), 20).await;

    let report = state.sweep(&c, 10 + OFFER_MS, 100).await.expect("sweep");
    assert_eq!(report.expired, 1);
    assert_eq!(report.assigned, 1, "re-routed to b1 at once");
    let call = state.call(&c, "call-1").await.expect("call");
    assert_eq!(call.get("status"), "offered");
    assert_eq!(call.get("agent_id"), "b1");
    assert_eq!(call.get("offer_id"), "call-1:2");
    let err = state
        .answer_offer(&c, "a1", &offer, true, 10 + OFFER_MS + 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::FailedPrecondition(ref m) if m.contains("expired")),
        "{err:?}"
    );
    // a1 is back in the idle index, with one miss.
    let a1 = state.agent(&c, "a1").await.expect("agent");
    assert_eq!(a1.status(), Status::Ready);
    assert_eq!(a1.missed_offers, 1);
    let idle = state
        .candidates(&c, 1, "wealth", 0.0, 16, &[])
        .await
        .expect("candidates");
    assert_eq!(
        idle.list
            .iter()
            .map(|c| c.agent_id.as_str())
            .collect::<Vec<_>>(),
        ["a1"]
    );
    let h = history(&redis, &c).await;
    assert_eq!(
        h.iter()
            .map(|(e, a, _)| format!("{e} {a}"))
            .collect::<Vec<_>>(),
        ["reserve a1", "release a1", "reserve b1"]
    );
}

#[tokio::test]
async fn after_max_missed_offers_in_a_row_the_agent_is_set_not_ready() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    let mut now = 10;
    for i in 0..3 {
        let placed = route(&state, &c, &format!("call-{i}"), "wealth", 5.0, now).await;
        assert_eq!(agent_of(&placed), "a1", "miss {i}");
        now += OFFER_MS;
        assert_eq!(state.sweep(&c, now, 100).await.expect("sweep").expired, 1);
        // The skip window keeps the same contact away from a1 for one timeout;
        // abandon it so the next round starts clean.
        state
            .abandon(&c, &format!("call-{i}"), now)
            .await
            .expect("abandon");
        now += 1;
    }
    let a1 = state.agent(&c, "a1").await.expect("agent");
    assert_eq!(a1.presence, Presence::NotReady);
    assert_eq!(a1.missed_offers, 3);
    assert!(
        state
            .candidates(&c, 1, "wealth", 0.0, 16, &[])
            .await
            .expect("c")
            .list
            .is_empty()
    );
    // Turning ready again resets the count.
    state
        .set_status(&c, "a1", Target::Ready, now)
        .await
        .expect("ready");
    assert_eq!(state.agent(&c, "a1").await.expect("agent").missed_offers, 0);
}

#[tokio::test]
async fn a_rejected_offer_goes_to_another_agent_then_back_after_a_timeout() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    let placed = route(&state, &c, "call-1", "wealth", 5.0, 10).await;
    let answer = state
        .answer_offer(&c, "a1", &offer_of(&placed), false, 11)
        .await
        .expect("reject");
    assert_eq!(answer, OfferAnswer::Rejected { reoffered_to: None });
    // Alone, a1 is not offered the contact again at once...
    let call = state.call(&c, "call-1").await.expect("call");
    assert_eq!(call.get("status"), "queued");
    assert_eq!(
        state.agent(&c, "a1").await.expect("a").status(),
        Status::Ready
    );
    // ... but after one offer timeout the retry timer offers it again.
    let report = state.sweep(&c, 11 + OFFER_MS, 100).await.expect("sweep");
    assert_eq!(report.assigned, 1);
    assert_eq!(
        state
            .call(&c, "call-1")
            .await
            .expect("call")
            .get("offer_id"),
        "call-1:2"
    );
}

fn vip_call<'a>(id: &'a str) -> NewCall<'a> {
    NewCall {
        call_id: id,
        channel: 1,
        group: "wealth|p:vip|d:minnan",
        min_score: 9.5,
        steps: vec![
            ("wealth|p:vip|l:zh".into(), 8.0, 10_000),
            ("wealth".into(), 5.0, 25_000),
        ],
        fields: vec![("customer_id", b"C-XM-0001".to_vec())],
    }
}

#[tokio::test]
async fn a_queued_contact_widens_step_by_step_and_is_taken_at_the_first_fit() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    // Only a VIP Mandarin agent with 8.5 and a plain agent with 6.0.
    login_ready(&state, &c, &agent("wang", 8.5, &[], &["vip"]), 1).await;
    login_ready(&state, &c, &agent("plain", 6.0, &[], &[]), 1).await;
    let t0 = 100_000;
    assert_eq!(
        place(&state, &c, &vip_call("vip-1"), t0).await,
        Placement::Queued { position: 1 }
    );
    assert_eq!(
        place(&state, &c, &vip_call("vip-2"), t0 + 1).await,
        Placement::Queued { position: 1 + 1 }
    );
    // Before 10 s nothing changes.
    let r = state.sweep(&c, t0 + 9_999, 100).await.expect("sweep");
    assert_eq!(r.widened, 0);
    // At 10 s the first contact widens to language + ≥ 8 and wang takes it.
    let r = state.sweep(&c, t0 + 10_000, 100).await.expect("sweep");
    assert_eq!((r.widened, r.assigned), (1, 1));
    let call = state.call(&c, "vip-1").await.expect("call");
    assert_eq!(
        (call.get("agent_id"), call.get("step"), call.get("group")),
        ("wang", "1", "wealth|p:vip|l:zh")
    );
    state
        .answer_offer(&c, "wang", call.get("offer_id"), true, t0 + 10_500)
        .await
        .expect("accept");
    // The second widens too but nobody fits step 1; at 25 s it reaches
    // "any qualified agent" and plain takes it.
    let r = state.sweep(&c, t0 + 10_001, 100).await.expect("sweep");
    assert_eq!((r.widened, r.assigned), (1, 0));
    let r = state.sweep(&c, t0 + 25_001, 100).await.expect("sweep");
    assert_eq!((r.widened, r.assigned), (1, 1));
    assert_eq!(
        state.call(&c, "vip-2").await.expect("call").get("agent_id"),
        "plain"
    );
}

#[tokio::test]
async fn an_agent_turning_ready_takes_a_widened_contact() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let wang = agent("wang", 8.5, &[], &["vip"]);
    login(&state, &c, &wang, false, 1).await;
    let t0 = 100_000;
    place(&state, &c, &vip_call("vip-1"), t0).await;
    // Not yet widened: wang (no Minnan, 8.5) does not qualify.
    let change = state
        .set_status(&c, "wang", Target::Ready, t0 + 5_000)
        .await
        .expect("ready");
    assert_eq!(change.assigned_call, None);
    state
        .set_status(&c, "wang", Target::NotReady, t0 + 6_000)
        .await
        .expect("nr");
    state.sweep(&c, t0 + 10_000, 100).await.expect("sweep");
    let change = state
        .set_status(&c, "wang", Target::Ready, t0 + 12_000)
        .await
        .expect("ready");
    assert_eq!(change.assigned_call.as_deref(), Some("vip-1"));
}

#[tokio::test]
async fn wrap_up_ends_on_ready_or_on_timeout() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    route(&state, &c, "call-1", "wealth", 5.0, 10).await;
    route(&state, &c, "call-2", "wealth", 5.0, 11).await;
    let done = state
        .complete(&c, "call-1", "a1", 0, true, 20)
        .await
        .expect("complete");
    assert_eq!(done.agent.presence, Presence::WrapUp);
    assert_eq!(done.agent.assigned_call, None, "no contact during wrap-up");
    assert_eq!(
        state.agent(&c, "a1").await.expect("a").status(),
        Status::WrapUp
    );
    let wrap_ms = tunables().wrap_up_timeout.as_millis() as i64;
    assert_eq!(
        state
            .sweep(&c, 20 + wrap_ms - 1, 100)
            .await
            .expect("s")
            .wrapped,
        0
    );
    let r = state.sweep(&c, 20 + wrap_ms, 100).await.expect("s");
    assert_eq!((r.wrapped, r.assigned), (1, 1));
    assert_eq!(
        state
            .call(&c, "call-2")
            .await
            .expect("call")
            .get("agent_id"),
        "a1"
    );
    // Ending wrap-up early with READY.
    state
        .complete(&c, "call-2", "a1", 0, true, 100_000)
        .await
        .expect("complete");
    let change = state
        .set_status(&c, "a1", Target::Ready, 100_001)
        .await
        .expect("ready");
    assert_eq!(change.presence, Presence::Ready);
    // The stale wrap timer does nothing.
    assert_eq!(
        state
            .sweep(&c, 100_000 + wrap_ms, 100)
            .await
            .expect("s")
            .wrapped,
        0
    );
}

#[tokio::test]
async fn capacity_is_per_channel_and_voice_blocks_the_rest() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let mut a = agent("a1", 9.0, &[], &[]);
    a.capacity = vec![
        ChannelCapacity { channel: 1, max: 1 },
        ChannelCapacity { channel: 2, max: 2 },
    ];
    login_ready(&state, &c, &a, 1).await;
    let chat = |id: &'static str| NewCall {
        channel: 2,
        ..call(id, "wealth", 5.0)
    };
    assert_eq!(
        agent_of(&place(&state, &c, &chat("chat-1"), 10).await),
        "a1"
    );
    assert_eq!(
        agent_of(&place(&state, &c, &chat("chat-2"), 11).await),
        "a1"
    );
    assert_eq!(
        place(&state, &c, &chat("chat-3"), 12).await,
        Placement::Queued { position: 1 }
    );
    // Voice is only offered to an agent holding nothing else.
    assert_eq!(
        route(&state, &c, "voice-1", "wealth", 5.0, 13).await,
        Placement::Queued { position: 1 }
    );
    let snap = state.agent(&c, "a1").await.expect("agent");
    assert_eq!(snap.held.len(), 2);
    // Finishing one chat frees a chat slot: the queued chat comes in (it is
    // older than the voice contact and voice still is blocked).
    let done = state
        .complete(&c, "chat-1", "a1", 0, false, 20)
        .await
        .expect("complete");
    assert_eq!(done.agent.assigned_call.as_deref(), Some("chat-3"));
    state
        .complete(&c, "chat-2", "a1", 0, false, 21)
        .await
        .expect("c");
    let done = state
        .complete(&c, "chat-3", "a1", 0, false, 22)
        .await
        .expect("c");
    assert_eq!(done.agent.assigned_call.as_deref(), Some("voice-1"));
    // While on voice, a chat queues.
    assert_eq!(
        place(&state, &c, &chat("chat-4"), 23).await,
        Placement::Queued { position: 1 }
    );
}

#[tokio::test]
async fn a_field_manager_is_reached_only_while_heartbeats_arrive() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let mut fm = agent("fm-huang", 9.0, &["minnan"], &["vip"]);
    fm.kind = AgentKind::Field as i32;
    fm.phone = "+8613859200088".into();
    login_ready(&state, &c, &fm, 1).await;
    // Field managers are never in the desk indexes.
    assert!(
        state
            .candidates(&c, 1, "wealth", 0.0, 16, &[])
            .await
            .expect("c")
            .list
            .is_empty()
    );
    let visit = Visit {
        start_ms: 0,
        end_ms: 7 * 86_400_000,
        priority: 3,
    };
    let new = call("rel-1", "financial_services|p:vip|d:minnan", 0.0);
    let before = dump(&redis, &c).await;
    let off = state
        .place_with_field_manager(&c, &new, "fm-huang", &visit, 10)
        .await
        .expect("place");
    assert_eq!(
        off,
        FieldPlacement::Unavailable {
            reason: "off duty (no heartbeat)".into()
        }
    );
    assert_eq!(
        dump(&redis, &c).await,
        before,
        "nothing written when unavailable"
    );

    let ttl = secs(60);
    let until = state
        .heartbeat(&c, "fm-huang", ttl, 1_000)
        .await
        .expect("heartbeat");
    assert_eq!(until, 61_000);
    let on = state
        .place_with_field_manager(&c, &new, "fm-huang", &visit, 2_000)
        .await
        .expect("place");
    assert_eq!(
        on,
        FieldPlacement::Assigned {
            offer_id: "rel-1:1".into(),
            task_id: "visit-rel-1".into()
        }
    );
    let tasks = state
        .follow_ups(&c, Some("visit"), 10)
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["agent_id"], "fm-huang");
    assert_eq!(tasks[0]["customer_id"], "c1");
    // Busy: the next relationship contact goes to the desk.
    let busy = state
        .place_with_field_manager(&c, &call("rel-2", "x", 0.0), "fm-huang", &visit, 3_000)
        .await
        .expect("place");
    assert_eq!(
        busy,
        FieldPlacement::Unavailable {
            reason: "busy with another contact".into()
        }
    );
    state
        .complete(&c, "rel-1", "fm-huang", 5, false, 4_000)
        .await
        .expect("complete");
    // Presence lapses without heartbeats.
    let late = state
        .place_with_field_manager(&c, &call("rel-3", "x", 0.0), "fm-huang", &visit, 61_000)
        .await
        .expect("place");
    assert_eq!(
        late,
        FieldPlacement::Unavailable {
            reason: "off duty (no heartbeat)".into()
        }
    );
    // Desk agents send no heartbeats.
    login_ready(&state, &c, &agent("desk", 5.0, &[], &[]), 1).await;
    let err = state.heartbeat(&c, "desk", ttl, 1).await.unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
}

#[tokio::test]
async fn an_accepted_callback_leaves_the_queue_and_is_persisted() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    assert!(matches!(
        route(&state, &c, "cb-1", "wealth", 5.0, 10).await,
        Placement::Queued { .. }
    ));
    let (already, task) = state
        .accept_callback(
            &c,
            "cb-1",
            (900_000, 2_700_000),
            3,
            "+8613859200001",
            true,
            20,
        )
        .await
        .expect("callback");
    assert!(!already);
    assert_eq!(task, "cb-cb-1");
    let call = state.call(&c, "cb-1").await.expect("call");
    assert_eq!(call.get("status"), "callback");
    assert_eq!(call.queue_position, None);
    let tasks = state
        .follow_ups(&c, Some("callback"), 10)
        .await
        .expect("tasks");
    assert_eq!(tasks[0]["start_ms"], "900000");
    assert_eq!(tasks[0]["priority"], "3");
    // It waits to be handed to the outreach scheduler; a failed hand-over
    // retries later, a successful one ends the wait, once.
    let pending = state.pending_handoffs(&c, 20, 10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["task_id"], "cb-cb-1");
    assert_eq!(pending[0]["phone"], "+8613859200001");
    state
        .handoff_result(&c, "cb-cb-1", Handoff::RetryAt(5_000), 20)
        .await
        .expect("retry");
    assert!(
        state
            .pending_handoffs(&c, 4_999, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    assert_eq!(
        state
            .pending_handoffs(&c, 5_000, 10)
            .await
            .expect("pending")
            .len(),
        1
    );
    state
        .handoff_result(&c, "cb-cb-1", Handoff::Done, 5_000)
        .await
        .expect("done");
    assert!(
        state
            .pending_handoffs(&c, i64::MAX / 2, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    // A late retry of a finished hand-over does not bring it back.
    state
        .handoff_result(&c, "cb-cb-1", Handoff::RetryAt(6_000), 5_001)
        .await
        .expect("retry");
    assert!(
        state
            .pending_handoffs(&c, i64::MAX / 2, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    let tasks = state
        .follow_ups(&c, Some("callback"), 10)
        .await
        .expect("tasks");
    assert_eq!(tasks[0]["handed_ms"], "5000");
    // Idempotent; and an agent turning ready no longer sees it.
    assert!(
        state
            .accept_callback(&c, "cb-1", (1, 2), 3, "", true, 21)
            .await
            .expect("again")
            .0
    );
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 30).await;
    assert_eq!(
        state.agent(&c, "a1").await.expect("a").status(),
        Status::Ready
    );
    // Only queued contacts can take a callback.
    route(&state, &c, "cb-2", "wealth", 5.0, 40).await;
    let err = state
        .accept_callback(&c, "cb-2", (1, 2), 1, "", true, 41)
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::FailedPrecondition(_)), "{err:?}");
}

#[tokio::test]
async fn abandoning_releases_queue_or_offer_and_counts_in_the_service_level() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    route(&state, &c, "q-1", "wealth", 5.0, 1_000).await;
    let (already, wait) = state.abandon(&c, "q-1", 31_000).await.expect("abandon");
    assert_eq!((already, wait), (false, 30_000));
    assert!(state.abandon(&c, "q-1", 32_000).await.expect("again").0);
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 40_000).await;
    assert_eq!(
        state.agent(&c, "a1").await.expect("a").status(),
        Status::Ready,
        "nothing left to take"
    );
    // An offered contact abandoned: its agent is released.
    route(&state, &c, "o-1", "wealth", 5.0, 50_000).await;
    state.abandon(&c, "o-1", 51_000).await.expect("abandon");
    assert_eq!(
        state.agent(&c, "a1").await.expect("a").status(),
        Status::Ready
    );
    // Answered fast (accepted) and slow (completed) contacts.
    let p = route(&state, &c, "fast", "wealth", 5.0, 60_000).await;
    state
        .answer_offer(&c, "a1", &offer_of(&p), true, 61_000)
        .await
        .expect("accept");
    route(&state, &c, "slow", "wealth", 5.0, 62_000).await;
    state
        .complete(&c, "fast", "a1", 0, false, 100_000)
        .await
        .expect("complete");
    state
        .complete(&c, "slow", "a1", 0, false, 101_000)
        .await
        .expect("complete");
    let stats = state.stats(&c, 102_000).await.expect("stats");
    let g = stats
        .groups
        .iter()
        .find(|g| g.group == "wealth")
        .expect("group");
    assert_eq!((g.answered, g.answered_fast, g.abandoned), (2, 1, 2));
    assert_eq!(stats.ready_agents, 1);
    // The window slides: 15 minutes later nothing counts.
    let stats = state.stats(&c, 102_000 + 900_001).await.expect("stats");
    assert!(stats.groups.is_empty());
}

#[tokio::test]
async fn empathy_is_learned_from_csat_on_contacts_that_needed_it() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    let mut needy = call("mot-1", "wealth", 5.0);
    needy.fields.push(("empathy_need", b"1".to_vec()));
    place(&state, &c, &needy, 10).await;
    // Handle time plays no part; CSAT 5 moves empathy toward 10.
    let done = state
        .complete(&c, "mot-1", "a1", 5, false, 20)
        .await
        .expect("complete");
    assert_eq!(done.learned.len(), 1);
    let empathy = state
        .agent(&c, "a1")
        .await
        .expect("a")
        .profile
        .traits
        .expect("traits")
        .empathy;
    assert!(
        (empathy - 6.0).abs() < 1e-9,
        "5 + 0.2 × (10 − 5) = {empathy}"
    );
    // A plain contact's CSAT teaches nothing about empathy.
    route(&state, &c, "plain-1", "wealth", 5.0, 30).await;
    let done = state
        .complete(&c, "plain-1", "a1", 1, false, 40)
        .await
        .expect("complete");
    assert!(done.learned.is_empty());
    // Learned traits survive a re-login.
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 50).await;
    let empathy = state
        .agent(&c, "a1")
        .await
        .expect("a")
        .profile
        .traits
        .expect("traits")
        .empathy;
    assert!((empathy - 6.0).abs() < 1e-9);
}

#[tokio::test]
async fn outbound_prefers_the_preferred_agent_and_never_queues() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let mut lin = agent("lin", 7.0, &[], &[]);
    lin.skills.insert("care".into(), 7.0);
    let mut top = agent("top", 9.0, &[], &[]);
    top.skills.insert("care".into(), 9.9);
    login_ready(&state, &c, &lin, 1).await;
    login_ready(&state, &c, &top, 1).await;
    let out = |id: &'static str| NewCall {
        group: "care",
        ..call(id, "care", 0.0)
    };
    let placed = state
        .place(&c, &out("task-1"), &["lin".into(), "top".into()], false, 10)
        .await
        .expect("place");
    assert_eq!(agent_of(&placed), "lin");
    state
        .place(&c, &out("task-2"), &["lin".into()], false, 11)
        .await
        .expect("place");
    let before = dump(&redis, &c).await;
    let none = state
        .place(&c, &out("task-3"), &[], false, 12)
        .await
        .expect("place");
    assert_eq!(none, Placement::NoAgent);
    assert_eq!(
        dump(&redis, &c).await,
        before,
        "an outbound call with nobody free writes nothing"
    );
}

/// The sweeper loop with an injected clock: the offer expires on the first
/// tick after the clock passes its deadline, not before.
#[tokio::test]
async fn the_sweeper_expires_offers_on_its_own() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    login_ready(&state, &c, &agent("a1", 9.0, &[], &[]), 1).await;
    route(&state, &c, "call-1", "wealth", 5.0, 1_000).await;
    let now = Arc::new(AtomicI64::new(1_000));
    let clock_now = now.clone();
    let clock: rapport_routing::sweeper::Clock = Arc::new(move || clock_now.load(Ordering::SeqCst));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rapport_routing::sweeper::run(
        state.clone(),
        clock,
        std::time::Duration::from_millis(20),
        4,
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        state.call(&c, "call-1").await.expect("call").get("status"),
        "offered"
    );
    now.store(1_000 + OFFER_MS, Ordering::SeqCst);
    let mut status = String::new();
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = state
            .call(&c, "call-1")
            .await
            .expect("call")
            .get("status")
            .to_owned();
        if status == "queued" {
            break;
        }
    }
    assert_eq!(status, "queued");
    assert_eq!(state.agent(&c, "a1").await.expect("a").missed_offers, 1);
    let _ = stop_tx.send(());
    task.await.expect("sweeper stops");
}

/// RouteOutbound's guard: while a customer is in a live inbound contact
/// (queued, offered, connected) an outbound call to them reserves nobody;
/// once the contact completes, is abandoned or becomes a callback, it may.
#[tokio::test]
async fn outbound_refuses_a_customer_in_a_live_inbound_contact() {
    let redis = TestRedis::start().expect("redis");
    let state = live(&redis).await;
    let c = center();
    let mut carer = agent("carer", 7.0, &[], &[]);
    carer.skills.insert("care".into(), 8.0);
    login_ready(&state, &c, &carer, 1).await;
    let out = |task: &'static str, customer: &'static str| NewCall {
        fields: vec![
            ("customer_id", customer.as_bytes().to_vec()),
            ("direction", b"outbound".to_vec()),
        ],
        ..call(task, "care", 0.0)
    };
    let busy = |p: &Placement, call: &str| {
        assert_eq!(
            p,
            &Placement::CustomerBusy {
                call_id: call.into()
            }
        );
    };

    // Nobody has the wealth skill high enough: the inbound contact queues.
    let queued = route(&state, &c, "in-1", "wealth", 9.5, 10).await;
    assert!(matches!(queued, Placement::Queued { .. }), "{queued:?}");
    let before = dump(&redis, &c).await;
    let refused = state
        .place(&c, &out("task-1", "c1"), &["carer".into()], false, 11)
        .await
        .expect("place");
    busy(&refused, "in-1");
    assert_eq!(
        dump(&redis, &c).await,
        before,
        "a busy refusal writes nothing"
    );
    // The marker has the safety-net TTL.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{}customer:c1:live", c.prefix()))
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!(
        ttl > 0 && ttl <= state.tunables().busy_ttl_s as i64,
        "ttl {ttl}"
    );

    // Another customer is not affected (and the carer is reserved for it).
    let other = state
        .place(&c, &out("task-2", "c2"), &["carer".into()], false, 12)
        .await
        .expect("place");
    assert_eq!(agent_of(&other), "carer");
    state
        .complete(&c, "task-2", "carer", 0, false, 13)
        .await
        .expect("complete outbound");

    // Abandoned: the customer is free again.
    state.abandon(&c, "in-1", 14).await.expect("abandon");
    let free = state
        .place(&c, &out("task-3", "c1"), &["carer".into()], false, 15)
        .await
        .expect("place");
    assert_eq!(agent_of(&free), "carer");
    state
        .complete(&c, "task-3", "carer", 0, false, 16)
        .await
        .expect("complete outbound");

    // Offered, then connected, are live; completed is not.
    let mut wealthy = agent("wealthy", 9.9, &[], &[]);
    wealthy.skills.insert("wealth".into(), 9.9);
    login_ready(&state, &c, &wealthy, 17).await;
    let offered = route(&state, &c, "in-2", "wealth", 9.5, 20).await;
    assert_eq!(agent_of(&offered), "wealthy");
    let refused = state
        .place(&c, &out("task-4", "c1"), &["carer".into()], false, 21)
        .await
        .expect("place");
    busy(&refused, "in-2");
    state
        .answer_offer(&c, "wealthy", &offer_of(&offered), true, 22)
        .await
        .expect("accept");
    let refused = state
        .place(&c, &out("task-4", "c1"), &["carer".into()], false, 23)
        .await
        .expect("place");
    busy(&refused, "in-2");
    state
        .complete(&c, "in-2", "wealthy", 0, false, 24)
        .await
        .expect("complete");
    let free = state
        .place(&c, &out("task-4", "c1"), &["carer".into()], false, 25)
        .await
        .expect("place");
    assert_eq!(agent_of(&free), "carer");
    state
        .complete(&c, "task-4", "carer", 0, false, 26)
        .await
        .expect("complete outbound");

    // A queued contact that turns into a callback is no longer live.
    let mut wealthy_state = state.agent(&c, "wealthy").await.expect("agent");
    assert_eq!(wealthy_state.status(), Status::Ready);
    state
        .set_status(&c, "wealthy", Target::NotReady, 27)
        .await
        .expect("not ready");
    wealthy_state = state.agent(&c, "wealthy").await.expect("agent");
    assert_eq!(wealthy_state.status(), Status::NotReady);
    let queued = route(&state, &c, "in-3", "wealth", 9.5, 30).await;
    assert!(matches!(queued, Placement::Queued { .. }), "{queued:?}");
    busy(
        &state
            .place(&c, &out("task-5", "c1"), &["carer".into()], false, 31)
            .await
            .expect("place"),
        "in-3",
    );
    state
        .accept_callback(&c, "in-3", (1, 2), 1, "", false, 32)
        .await
        .expect("callback");
    let free = state
        .place(&c, &out("task-5", "c1"), &["carer".into()], false, 33)
        .await
        .expect("place");
    assert_eq!(agent_of(&free), "carer");
    let marker: bool = redis::cmd("EXISTS")
        .arg(format!("{}customer:c1:live", c.prefix()))
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert!(!marker, "no live contact left: the marker is gone");
}
