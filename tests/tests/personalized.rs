//! End to end, with the real binaries: the field-manager flow (on duty and
//! off duty), the callback flow, and offer expiry on an agent desktop.

use std::time::Duration;

use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions, spawn, wait_serving};
use rapportctl::scenario::{self, FM_HUANG, LIN, VIP_CUSTOMER};
use tokio_stream::StreamExt as _;

use rapportctl::scenario::route_request as route;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_calls_reach_the_field_manager_only_while_on_duty() {
    let mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");
    let mut profile = mesh.profile_client().await.expect("profile client");
    let mut routing = mesh.routing_client(0).await.expect("routing client");
    scenario::seed_profiles(&mut profile).await.expect("seed");
    scenario::login_agents(&mut routing, "")
        .await
        .expect("agents");
    scenario::login_field_manager(&mut routing, "")
        .await
        .expect("field manager");

    // Off duty (no heartbeat yet): the VIP desk takes the call.
    let off = routing
        .route_call(route(
            "rel-off",
            scenario::VIP_PHONE,
            "personal_financial_services",
        ))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(off.outcome, pb::RouteOutcome::Assigned as i32, "{off:?}");
    assert_eq!(
        off.agent.as_ref().expect("agent").agent_id,
        LIN,
        "{:?}",
        off.reasons
    );
    assert!(off.follow_up.is_none());
    let reasons = off.reasons.join("\n");
    assert!(
        reasons.contains("fm-huang unavailable (off duty"),
        "{reasons}"
    );

    // On duty: straight to her phone, with the screen pop on her desktop
    // and a visit planned.
    let beat = routing
        .heartbeat(pb::HeartbeatRequest {
            agent_id: FM_HUANG.into(),
            ..Default::default()
        })
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(beat.on_duty_until.is_some());
    let mut desktop = routing
        .watch_agent(pb::WatchAgentRequest {
            agent_id: FM_HUANG.into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let on = routing
        .route_call(route(
            "rel-on",
            scenario::VIP_PHONE,
            "personal_financial_services",
        ))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(on.outcome, pb::RouteOutcome::Assigned as i32, "{on:?}");
    let agent = on.agent.as_ref().expect("agent");
    assert_eq!(agent.agent_id, FM_HUANG);
    assert_eq!(agent.kind, pb::AgentKind::Field as i32);
    assert_eq!(agent.phone, "+8613859208888");
    let visit = on.follow_up.as_ref().expect("visit planned");
    assert_eq!(visit.kind, "visit");
    assert_eq!(visit.customer_id, VIP_CUSTOMER);
    assert_eq!(visit.agent_id, FM_HUANG);
    let offer = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = desktop.next().await {
            if let Some(offer) = event.expect("event").offer {
                return offer;
            }
        }
        panic!("stream ended without an offer")
    })
    .await
    .expect("offer delivered");
    assert_eq!(offer.call_id, "rel-on");
    assert_eq!(offer.offer_id, on.offer_id);
    assert_eq!(
        offer.screen_pop.expect("screen pop").form_of_address,
        "陈总"
    );
    routing
        .accept_offer(pb::AcceptOfferRequest {
            agent_id: FM_HUANG.into(),
            offer_id: offer.offer_id.clone(),
            ..Default::default()
        })
        .await
        .expect("accepted");
    let tasks = routing
        .list_follow_ups(pb::ListFollowUpsRequest {
            kind: "visit".into(),
            ..Default::default()
        })
        .await
        .expect("follow-ups")
        .into_inner();
    assert_eq!(tasks.tasks.len(), 1);
    assert_eq!(tasks.tasks[0].call_id, "rel-on");

    // Bad input names the field or the state.
    let err = routing
        .heartbeat(pb::HeartbeatRequest {
            agent_id: LIN.into(),
            ..Default::default()
        })
        .await
        .expect_err("desk agents send no heartbeats");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let err = routing
        .list_follow_ups(pb::ListFollowUpsRequest {
            kind: "party".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown kind");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("kind"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_wait_exceeds_his_patience_takes_a_callback() {
    let mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");
    let mut profile = mesh.profile_client().await.expect("profile client");
    let mut routing = mesh.routing_client(0).await.expect("routing client");
    scenario::seed_profiles(&mut profile).await.expect("seed");
    // Only Lin serves the VIP Minnan wealth group.
    let lin = scenario::agents()
        .into_iter()
        .find(|a| a.agent_id == LIN)
        .expect("lin");
    routing
        .login_agent(pb::LoginAgentRequest {
            agent: Some(lin),
            ready: true,
            ..Default::default()
        })
        .await
        .expect("login");
    // Two answered contacts give the group a service rate: 60 s / 2 = 30 s
    // per queue position.
    for n in 0..2 {
        let d = routing
            .route_call(route(
                &format!("served-{n}"),
                scenario::VIP_PHONE,
                "personal_wealth",
            ))
            .await
            .expect("routed")
            .into_inner();
        assert_eq!(d.outcome, pb::RouteOutcome::Assigned as i32, "{d:?}");
        routing
            .accept_offer(pb::AcceptOfferRequest {
                agent_id: LIN.into(),
                offer_id: d.offer_id.clone(),
                ..Default::default()
            })
            .await
            .expect("accept");
        if n == 0 {
            routing
                .complete_call(pb::CompleteCallRequest {
                    call_id: d.call_id.clone(),
                    agent_id: LIN.into(),
                    csat: 5,
                    ..Default::default()
                })
                .await
                .expect("complete");
        }
    }
    // Lin is busy; his patience (27 s, from complaints after 34–45 s waits)
    // is shorter than the estimated 30 s.
    let d = routing
        .route_call(route("cb-1", scenario::VIP_PHONE, "personal_wealth"))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(d.outcome, pb::RouteOutcome::CallbackOffered as i32, "{d:?}");
    let offer = d.callback.expect("callback offer");
    assert_eq!(offer.estimated_wait_s, 30);
    assert_eq!(offer.patience_s, d.patience_s);
    assert!(offer.patience_s < 30, "{offer:?}");
    assert!(!offer.windows.is_empty());

    let mut ivr = routing
        .watch_call(pb::WatchCallRequest {
            call_id: "cb-1".into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let first = ivr.next().await.expect("an update").expect("ok");
    assert_eq!(
        first.state.as_ref().expect("state").status,
        pb::CallStatus::Queued as i32
    );
    assert_eq!(first.state.as_ref().expect("state").queue_position, 1);
    assert!(first.callback.is_some());

    // Bad window: named field, nothing changed.
    let err = routing
        .accept_callback(pb::AcceptCallbackRequest {
            call_id: "cb-1".into(),
            window: Some(pb::TimeRange {
                start: offer.windows[0].end,
                end: offer.windows[0].start,
            }),
            ..Default::default()
        })
        .await
        .expect_err("end before start");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("window.end"), "{}", err.message());

    let state = routing
        .accept_callback(pb::AcceptCallbackRequest {
            call_id: "cb-1".into(),
            window: Some(offer.windows[0]),
            ..Default::default()
        })
        .await
        .expect("callback accepted")
        .into_inner();
    assert_eq!(state.status, pb::CallStatus::Callback as i32);
    let task = state.callback.expect("callback task");
    assert_eq!(task.priority, 3, "VIP");
    assert_eq!(task.customer_id, VIP_CUSTOMER);
    assert_eq!(task.window, Some(offer.windows[0]));
    // The IVR's stream ends with the callback.
    let last = tokio::time::timeout(Duration::from_secs(10), async {
        let mut last = None;
        while let Some(update) = ivr.next().await {
            last = Some(update.expect("ok"));
        }
        last
    })
    .await
    .expect("stream ends")
    .expect("an update");
    assert_eq!(
        last.state.expect("state").status,
        pb::CallStatus::Callback as i32
    );
    let listed = routing
        .list_follow_ups(pb::ListFollowUpsRequest {
            kind: "callback".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.tasks.len(), 1);

    // Routing handed the callback to the outreach scheduler, which plans it
    // in the window he chose, at his tier's priority, for his phone.
    let mut outreach = mesh.outreach_client().await.expect("outreach");
    let plan = outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: VIP_CUSTOMER.into(),
        })
        .await
        .expect("care plan")
        .into_inner();
    let callback = plan
        .tasks
        .iter()
        .find(|t| t.task_id == "cb:cb-1")
        .unwrap_or_else(|| panic!("outreach has the callback: {plan:?}"));
    assert_eq!(callback.kind, pb::CareTaskKind::Callback as i32);
    assert_eq!(callback.window, Some(offer.windows[0]));
    assert_eq!(callback.priority, 3, "VIP");
    assert!(callback.reason.contains("cb-1"), "{}", callback.reason);

    // Another caller hangs up while waiting: the abandonment and its wait
    // reach his history (for patience learning).
    routing
        .route_call(route("gone-1", scenario::VIP_PHONE, "personal_wealth"))
        .await
        .expect("routed");
    let state = routing
        .abandon_call(pb::AbandonCallRequest {
            call_id: "gone-1".into(),
            ..Default::default()
        })
        .await
        .expect("abandoned")
        .into_inner();
    assert_eq!(state.status, pb::CallStatus::Abandoned as i32);
    let view = profile
        .get_profile(pb::GetProfileRequest {
            customer_id: VIP_CUSTOMER.into(),
        })
        .await
        .expect("profile")
        .into_inner();
    assert!(view.summary.expect("summary").abandoned_90d >= 1);
    let stats = routing
        .queue_stats(pb::QueueStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    let group = stats
        .groups
        .iter()
        .find(|g| g.group == "wealth|p:vip|d:minnan")
        .expect("the VIP group");
    assert_eq!((group.answered, group.abandoned), (2, 1));
    assert_eq!(group.service_level_threshold_s, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccepted_offer_expires_and_the_contact_goes_to_the_next_agent() {
    let mut mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");
    // A replica with a 1 s offer timeout (the policy default is 15 s); the
    // sweeper of either replica expires its offers.
    let mut fast = spawn(
        mesh.dir.path(),
        "routing",
        &[
            ("RAPPORT_REDIS_URL", mesh.redis.url()),
            ("RAPPORT_PROFILE_URL", mesh.profile.url().as_str()),
            (
                "RAPPORT_CLASSIFICATION_URL",
                mesh.classification.url().as_str(),
            ),
            ("RAPPORT_OFFER_TIMEOUT", "1s"),
        ],
    )
    .expect("spawn a fast replica");
    wait_serving(&mut fast, Duration::from_secs(30))
        .await
        .expect("serving");
    let mut routing = pb::routing_service_client::RoutingServiceClient::new(
        rapportctl::mesh::connect(&fast.url())
            .await
            .expect("connect"),
    );
    for (id, score) in [("a1", 9.0), ("a2", 8.0)] {
        routing
            .login_agent(pb::LoginAgentRequest {
                agent: Some(pb::AgentProfile {
                    agent_id: id.into(),
                    skills: [("general".to_owned(), score)].into_iter().collect(),
                    languages: vec!["zh".into()],
                    ..Default::default()
                }),
                ready: true,
                ..Default::default()
            })
            .await
            .expect("login");
    }
    let mut desktop = routing
        .watch_agent(pb::WatchAgentRequest {
            agent_id: "a1".into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let d = routing
        .route_call(pb::RouteCallRequest {
            call_id: "exp-1".into(),
            ivr_selection: "general".into(),
            ..Default::default()
        })
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(d.agent.as_ref().expect("agent").agent_id, "a1", "{d:?}");
    // The desktop sees the offer, then its withdrawal.
    let withdrawn = tokio::time::timeout(Duration::from_secs(15), async {
        let mut offered = None;
        while let Some(event) = desktop.next().await {
            let event = event.expect("event");
            if let Some(offer) = event.offer {
                offered = Some(offer.offer_id);
            } else if !event.offer_withdrawn_id.is_empty() {
                assert_eq!(Some(&event.offer_withdrawn_id), offered.as_ref());
                return event.offer_withdrawn_id;
            }
        }
        panic!("stream ended")
    })
    .await
    .expect("offer withdrawn");
    assert_eq!(withdrawn, d.offer_id);
    let call = routing
        .get_call(pb::GetCallRequest {
            call_id: "exp-1".into(),
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(call.agent.expect("re-routed").agent_id, "a2");
    assert_eq!(call.status, pb::CallStatus::Offered as i32);
    let err = routing
        .accept_offer(pb::AcceptOfferRequest {
            agent_id: "a1".into(),
            offer_id: d.offer_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("expired");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let a1 = routing
        .get_agent(pb::GetAgentRequest {
            agent_id: "a1".into(),
            ..Default::default()
        })
        .await
        .expect("agent")
        .into_inner();
    assert_eq!(a1.status, pb::AgentStatus::Ready as i32);
    assert_eq!(a1.missed_offers, 1);
    // The other replica's client sees the same state.
    let mut other = mesh.routing_client(0).await.expect("client");
    let a2 = other
        .get_agent(pb::GetAgentRequest {
            agent_id: "a2".into(),
            ..Default::default()
        })
        .await
        .expect("agent")
        .into_inner();
    assert_eq!(a2.status, pb::AgentStatus::Reserved as i32);
    mesh.routing.push(fast);
    mesh.shutdown(Duration::from_secs(5));
}
