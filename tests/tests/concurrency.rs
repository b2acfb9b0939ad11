//! End to end: two routing processes share one Redis; 200 concurrent
//! RouteCalls against 20 ready agents give exactly 20 assignments and never
//! hand one agent to two contacts.

use std::collections::HashSet;

use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_routing_replicas_never_double_book() {
    let mesh = Mesh::start(MeshOptions {
        routing_replicas: 2,
        // This test is about atomicity, not latency: 200 concurrent calls
        // on a loaded CI machine (debug builds, other tests running) can
        // take longer than the 250 ms production budget, and a call past
        // its budget is rightly sent to the overflow target (FALLBACK),
        // which would make the counts below depend on the machine's load.
        env: vec![("RAPPORT_ROUTE_BUDGET".into(), "60s".into())],
        ..Default::default()
    })
    .await
    .expect("mesh starts");
    let mut first = mesh.routing_client(0).await.expect("client");
    for i in 0..20 {
        first
            .login_agent(pb::LoginAgentRequest {
                agent: Some(pb::AgentProfile {
                    agent_id: format!("agent-{i}"),
                    skills: [("general".to_owned(), 5.0 + (i % 5) as f64)]
                        .into_iter()
                        .collect(),
                    languages: vec!["zh".into()],
                    ..Default::default()
                }),
                ready: true,
                ..Default::default()
            })
            .await
            .expect("login");
    }

    let clients = [
        mesh.routing_client(0).await.expect("client"),
        mesh.routing_client(1).await.expect("client"),
    ];
    let mut tasks = Vec::new();
    for n in 0..200 {
        let mut client = clients[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            client
                .route_call(pb::RouteCallRequest {
                    call_id: format!("load-{n}"),
                    ivr_selection: "general".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut assigned = Vec::new();
    let mut queued = 0;
    for task in tasks {
        let decision = task.await.expect("task").expect("every call answered");
        match pb::RouteOutcome::try_from(decision.outcome) {
            Ok(pb::RouteOutcome::Assigned) => {
                assigned.push(decision.agent.expect("agent").agent_id)
            }
            Ok(pb::RouteOutcome::Queued) => queued += 1,
            other => {
                let logs: Vec<String> = mesh.routing.iter().map(|r| r.log_text()).collect();
                panic!(
                    "unexpected outcome {other:?} ({}); routing logs:\n{}",
                    decision.degraded_reason,
                    logs.join("\n")
                )
            }
        }
    }
    let distinct: HashSet<&String> = assigned.iter().collect();
    assert_eq!(assigned.len(), 20, "exactly 20 assignments");
    assert_eq!(distinct.len(), 20, "no agent twice");
    assert_eq!(queued, 180, "everyone else waits in Redis");
}
