//! End to end: every binary serves health and reflection, routing degrades
//! instead of failing when a dependency is down, and SIGTERM drains and
//! exits cleanly.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions, connect};
use tokio_stream::StreamExt as _;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn list_services(url: &str) -> Vec<String> {
    let mut client = ServerReflectionClient::new(connect(url).await.expect("connect"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let reply = stream.next().await.expect("one reply").expect("ok");
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

async fn describes_symbol(url: &str, symbol: &str) -> bool {
    let mut client = ServerReflectionClient::new(connect(url).await.expect("connect"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    matches!(
        stream.next().await,
        Some(Ok(r)) if matches!(r.message_response, Some(MessageResponse::FileDescriptorResponse(_)))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_degradation_and_graceful_shutdown() {
    let mut mesh = Mesh::start(MeshOptions::default())
        .await
        .expect("mesh starts");

    // Reflection lists exactly what each binary serves (what grpcurl uses).
    let expected = [
        (mesh.profile.url(), "rapport.v1.ProfileService"),
        (
            mesh.classification.url(),
            "rapport.v1.ClassificationService",
        ),
        (mesh.routing[0].url(), "rapport.v1.RoutingService"),
        (mesh.outreach.url(), "rapport.v1.OutreachService"),
    ];
    for (url, service) in &expected {
        let services = list_services(url).await;
        assert!(services.iter().any(|s| s == service), "{url}: {services:?}");
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{services:?}"
        );
        assert_eq!(
            services
                .iter()
                .filter(|s| s.starts_with("rapport."))
                .count(),
            1,
            "{url} lists only its own service: {services:?}"
        );
        assert!(
            describes_symbol(url, service).await,
            "{service} is described"
        );
    }

    // Outreach asks profile about the customer: an unknown one is NOT_FOUND.
    let mut outreach = mesh.outreach_client().await.expect("client");
    let err = outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "C-1".into(),
        })
        .await
        .expect_err("unknown customer");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    // Classification goes down: routing still answers, marked degraded,
    // routing on the selection's skill alone.
    let mut routing = mesh.routing_client(0).await.expect("client");
    routing
        .login_agent(pb::LoginAgentRequest {
            agent: Some(pb::AgentProfile {
                agent_id: "a1".into(),
                skills: [("cards".to_owned(), 8.0)].into_iter().collect(),
                languages: vec!["zh".into()],
                ..Default::default()
            }),
            ready: true,
            ..Default::default()
        })
        .await
        .expect("login");
    mesh.classification
        .child
        .signal(Signal::SIGKILL)
        .expect("kill");
    mesh.classification.child.wait().expect("reaped");
    let decision = routing
        .route_call(pb::RouteCallRequest {
            call_id: "degraded-1".into(),
            caller_phone: "139 1000 0002".into(),
            ivr_selection: "cards".into(),
            ..Default::default()
        })
        .await
        .expect("still answers")
        .into_inner();
    assert!(decision.degraded);
    assert!(
        decision.degraded_reason.contains("classification"),
        "{}",
        decision.degraded_reason
    );
    assert_eq!(decision.outcome, pb::RouteOutcome::Assigned as i32);
    assert_eq!(decision.requirements.expect("requirements").group, "cards");

    // SIGTERM: each remaining service drains and exits 0 well within its
    // grace period.
    for service in [&mut mesh.routing[0], &mut mesh.profile, &mut mesh.outreach] {
        let started = Instant::now();
        service.child.signal(Signal::SIGTERM).expect("sigterm");
        loop {
            if let Some(status) = service.child.try_wait().expect("wait") {
                assert!(status.success(), "{} exited with {status}", service.name);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} did not stop",
                service.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            service.log_text().contains("stopped"),
            "{} logged its stop",
            service.name
        );
    }
}
