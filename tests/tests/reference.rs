//! End to end: the four real binaries and a throwaway Redis route the
//! reference case of DESIGN.md §3.

use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions};
use rapportctl::scenario::{self, CHEN_JIE, LIN, VIP_CUSTOMER, WANG, ZHAO};

use rapportctl::scenario::route_request as route;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_vip_call_reaches_the_minnan_vip_agent_and_queues_for_her() {
    let mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");
    let mut profile = mesh.profile_client().await.expect("profile client");
    let mut routing = mesh.routing_client(0).await.expect("routing client");
    scenario::seed_profiles(&mut profile)
        .await
        .expect("seed profiles");
    scenario::login_agents(&mut routing, "")
        .await
        .expect("login agents");

    // The free VIP agent who speaks Minnan with the best wealth skill wins
    // over a higher-skilled VIP agent without Minnan and over a Minnan
    // speaker outside the VIP pool.
    let first = routing
        .route_call(route("ref-1", scenario::VIP_PHONE, "personal_wealth"))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(
        first.outcome,
        pb::RouteOutcome::Assigned as i32,
        "{first:?}"
    );
    let agent = first.agent.as_ref().expect("agent").agent_id.as_str();
    assert_eq!(
        agent, LIN,
        "not {WANG}, {CHEN_JIE} or {ZHAO}: {:?}",
        first.reasons
    );
    assert_eq!(first.customer_id, VIP_CUSTOMER);
    assert_eq!(first.tier, pb::ValueTier::Vip as i32);
    assert_eq!(first.dialect, "minnan");
    assert!(!first.degraded, "{}", first.degraded_reason);
    let req = first.requirements.as_ref().expect("requirements");
    assert_eq!(req.group, "wealth|p:vip|d:minnan");
    assert!(req.min_score >= 9.5);
    // Patience is learned from his three complaints after waits > 30 s.
    assert!(
        first.patience_s > 0 && first.patience_s < 30,
        "patience {}",
        first.patience_s
    );
    let reasons = first.reasons.join("\n");
    assert!(reasons.contains("wealth skill 9.6"), "{reasons}");
    assert!(reasons.contains("minnan"), "{reasons}");
    assert!(reasons.contains("patience"), "{reasons}");
    let pop = first.screen_pop.as_ref().expect("screen pop");
    assert_eq!(pop.form_of_address, "陈总");
    assert!(!pop.cautions.is_empty());

    // While Lin is busy, his next call queues: nobody else qualifies.
    let second = routing
        .route_call(route("ref-2", scenario::VIP_PHONE, "personal_wealth"))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(
        second.outcome,
        pb::RouteOutcome::Queued as i32,
        "{second:?}"
    );
    assert_eq!(second.queue_position, 1);
    for idle in [WANG, CHEN_JIE, ZHAO] {
        let state = routing
            .get_agent(pb::GetAgentRequest {
                agent_id: idle.into(),
                ..Default::default()
            })
            .await
            .expect("agent")
            .into_inner();
        assert_eq!(
            state.status,
            pb::AgentStatus::Ready as i32,
            "{idle} untouched"
        );
    }

    // The moment she turns ready (completing the first call), she takes it.
    let done = routing
        .complete_call(pb::CompleteCallRequest {
            call_id: "ref-1".into(),
            agent_id: LIN.into(),
            outcome: pb::ContactOutcome::Resolved as i32,
            handle_s: 300,
            csat: 5,
            ..Default::default()
        })
        .await
        .expect("completed")
        .into_inner();
    assert!(done.recorded_in_profile);
    let lin = done.agent.expect("agent state");
    assert_eq!(lin.status, pb::AgentStatus::Reserved as i32);
    assert_eq!(lin.call_id, "ref-2");
    assert_eq!(lin.assigned.expect("assigned").call_id, "ref-2");
    let state = routing
        .get_call(pb::GetCallRequest {
            call_id: "ref-2".into(),
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(state.status, pb::CallStatus::Offered as i32);
    assert_eq!(state.agent.expect("agent").agent_id, LIN);

    // The completed contact is now part of his history.
    let view = profile
        .get_profile(pb::GetProfileRequest {
            customer_id: VIP_CUSTOMER.into(),
        })
        .await
        .expect("profile")
        .into_inner();
    assert_eq!(view.summary.expect("summary").total_contacts, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_callers_bad_input_and_missing_agents() {
    let mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");
    let mut profile = mesh.profile_client().await.expect("profile client");
    let mut routing = mesh.routing_client(0).await.expect("routing client");
    scenario::seed_profiles(&mut profile).await.expect("seed");
    scenario::login_agents(&mut routing, "")
        .await
        .expect("login");

    // Unknown caller: routed with a default profile.
    let unknown = routing
        .route_call(route("u-1", scenario::UNKNOWN_PHONE, "general"))
        .await
        .expect("routed")
        .into_inner();
    assert_eq!(unknown.outcome, pb::RouteOutcome::Assigned as i32);
    assert_eq!(unknown.customer_id, "");
    assert!(!unknown.degraded);
    assert!(
        unknown.reasons.iter().any(|r| r.contains("unknown caller")),
        "{:?}",
        unknown.reasons
    );
    assert_eq!(unknown.patience_s, 90, "default patience");

    let cases = [
        (route("b-1", "12-not-a-phone", "cards"), "caller_phone"),
        (
            route("b-2", scenario::VIP_PHONE, "no_such_selection"),
            "ivr_selection",
        ),
        (route("", scenario::VIP_PHONE, "cards"), "call_id"),
        (
            route(&"x".repeat(65), scenario::VIP_PHONE, "cards"),
            "call_id",
        ),
        (
            pb::RouteCallRequest {
                channel: 42,
                ..route("b-5", scenario::VIP_PHONE, "cards")
            },
            "channel",
        ),
    ];
    for (request, field) in cases {
        let call_id = request.call_id.clone();
        let err = routing.route_call(request).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
        if !call_id.is_empty() && call_id.len() <= 64 {
            let missing = routing
                .get_call(pb::GetCallRequest {
                    call_id,
                    ..Default::default()
                })
                .await
                .expect_err("nothing written");
            assert_eq!(missing.code(), tonic::Code::NotFound);
        }
    }

    let err = routing
        .set_agent_status(pb::SetAgentStatusRequest {
            agent_id: "nobody".into(),
            status: pb::AgentStatus::Ready as i32,
            ..Default::default()
        })
        .await
        .expect_err("unknown agent");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = routing
        .get_agent(pb::GetAgentRequest {
            agent_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown agent");
    assert_eq!(err.code(), tonic::Code::NotFound);
}
