//! `rapportctl demo`: starts the mesh locally, seeds the reference scenario
//! and plays real calls through the gRPC API, printing every routing
//! decision with its reasons. Everything it started is stopped on exit,
//! including on Ctrl-C.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use rapport_proto as pb;
use rapport_proto::routing_service_client::RoutingServiceClient;
use tonic::transport::Channel;

use crate::mesh::{Mesh, MeshOptions};
use crate::scenario::{self, CHEN_JIE, LIN, VIP_CUSTOMER, WANG, ZHAO};

/// Runs the demo; returns when the scenario is played or on Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let workdir = PathBuf::from(".demo");
    if workdir.exists() {
        std::fs::remove_dir_all(&workdir).context("failed to clean .demo/")?;
    }
    println!("Rapport demo: starting a private redis-server and the four services");
    println!(
        "(logs and the SQLite profile database in {}/)\n",
        workdir.display()
    );
    let mut mesh = Mesh::start(MeshOptions {
        routing_replicas: 1,
        workdir: Some(workdir),
        env: Vec::new(),
    })
    .await?;
    for service in mesh.services() {
        println!("  {:<15} {}  SERVING", service.name, service.addr);
    }
    println!();

    let outcome = tokio::select! {
        result = play(&mesh) => result,
        _ = tokio::signal::ctrl_c() => {
            println!("\nCtrl-C: stopping");
            Ok(())
        }
    };
    mesh.shutdown(Duration::from_secs(5));
    println!("\nAll services stopped.");
    outcome
}

async fn play(mesh: &Mesh) -> anyhow::Result<()> {
    let mut profile = mesh.profile_client().await?;
    let mut routing = mesh.routing_client(0).await?;

    println!(
        "Seeding 3 customers (陈总 with 20 earlier contacts, 3 of them complaints after waits of 34, 38 and 45 s)"
    );
    scenario::seed_profiles(&mut profile).await?;
    println!(
        "Logging in 6 agents: lin (VIP, Minnan, wealth 9.6), wang (VIP, wealth 9.9, no Minnan),"
    );
    println!(
        "  chen-jie (Minnan, wealth 9.8, not VIP), zhao (VIP, Minnan, wealth 9.3), zhou (cards), emma (en/zh)\n"
    );
    scenario::login_agents(&mut routing, "").await?;
    println!(
        "Logging in fm-huang, 陈总's dedicated field account manager (kind FIELD, own phone)\n"
    );
    scenario::login_field_manager(&mut routing, "").await?;

    // 1. The reference case.
    let first = route(
        &mut routing,
        "demo-call-1",
        scenario::VIP_PHONE,
        "personal_wealth",
        "VIP customer 陈总 from Xiamen calls and chooses personal wealth products",
    )
    .await?;
    let lin = first.agent.as_ref().map(|a| a.agent_id.as_str());
    println!(
        "   ✔ {} wins over {WANG} (9.9, no Minnan), {CHEN_JIE} (9.8, not VIP) and {ZHAO} (9.3 < 9.5)\n",
        lin.unwrap_or("nobody")
    );

    // 2. A standard caller and an English-speaking caller.
    route(
        &mut routing,
        "demo-call-2",
        scenario::STANDARD_PHONE,
        "cards",
        "Standard customer 李女士 calls about her card",
    )
    .await?;
    route(
        &mut routing,
        "demo-call-3",
        scenario::ENGLISH_PHONE,
        "personal_wealth",
        "Mr. Carter calls in English about wealth products",
    )
    .await?;

    // 3. An unknown caller is routed with the default profile.
    route(
        &mut routing,
        "demo-call-4",
        scenario::UNKNOWN_PHONE,
        "general",
        "An unknown number calls the general line",
    )
    .await?;

    // 4. The VIP calls again while Lin is busy: he queues, and is assigned
    //    the moment she finishes.
    route(
        &mut routing,
        "demo-call-5",
        scenario::VIP_PHONE,
        "personal_wealth",
        "陈总 calls again while Lin is still on his first call",
    )
    .await?;
    println!("▶ Lin completes the first call (resolved, CSAT 5)");
    let done = routing
        .complete_call(pb::CompleteCallRequest {
            call_id: "demo-call-1".into(),
            agent_id: LIN.into(),
            outcome: pb::ContactOutcome::Resolved as i32,
            handle_s: 310,
            csat: 5,
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "   contact recorded in profile: {}",
        if done.recorded_in_profile {
            "yes"
        } else {
            "no"
        }
    );
    if let Some(next) = done.agent.as_ref().and_then(|a| a.assigned.as_ref()) {
        println!(
            "   → Lin turned ready and took queued call {} at once",
            next.call_id
        );
        for reason in &next.reasons {
            println!("     · {reason}");
        }
    }
    let state = routing
        .get_call(pb::GetCallRequest {
            call_id: "demo-call-5".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "   GetCall demo-call-5: {} to {} after waiting {} s\n",
        pb::CallStatus::try_from(state.status)
            .unwrap_or_default()
            .as_str_name(),
        state.agent.map(|a| a.agent_id).unwrap_or_default(),
        state.queue_wait_s
    );

    // 5. A relationship intent: his field manager when on duty.
    route(
        &mut routing,
        "demo-call-6",
        scenario::VIP_PHONE,
        "personal_financial_services",
        "陈总 chooses personal financial services while fm-huang sends no heartbeats (off duty)",
    )
    .await?;
    routing
        .heartbeat(pb::HeartbeatRequest {
            agent_id: scenario::FM_HUANG.into(),
            ..Default::default()
        })
        .await?;
    println!("▶ fm-huang's phone app sends a heartbeat: she is on duty");
    route(
        &mut routing,
        "demo-call-7",
        scenario::VIP_PHONE,
        "personal_financial_services",
        "陈总 chooses personal financial services again",
    )
    .await?;

    // 6. What the profile now shows.
    let view = profile
        .get_profile(pb::GetProfileRequest {
            customer_id: VIP_CUSTOMER.into(),
        })
        .await?
        .into_inner();
    if let Some(summary) = view.summary {
        println!(
            "▶ Profile of 陈总 now holds {} contacts ({} complaint(s) in the last 90 days); waits before complaints: {:?} s\n",
            summary.total_contacts,
            summary.complaints_90d,
            summary
                .waits_before_complaints
                .iter()
                .map(|w| w.wait_s)
                .collect::<Vec<_>>()
        );
    }

    // 7. The outreach scheduler followed the profile changes and planned
    //    his care contacts, each with its reason.
    let mut outreach = mesh.outreach_client().await?;
    println!("▶ Outreach: the care plan of 陈总, from his profile and the policy");
    let mut plan = Vec::new();
    for _ in 0..50 {
        plan = outreach
            .get_care_plan(pb::GetCarePlanRequest {
                customer_id: VIP_CUSTOMER.into(),
            })
            .await?
            .into_inner()
            .tasks;
        if !plan.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if plan.is_empty() {
        println!("   nothing due for him under the current policy");
    }
    for task in &plan {
        let due = task
            .due_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        println!(
            "   · {} due {due}: {}",
            pb::CareTaskKind::try_from(task.kind)
                .unwrap_or_default()
                .as_str_name()
                .trim_start_matches("CARE_TASK_KIND_")
                .to_lowercase(),
            task.reason
        );
        if !task.theme.is_empty() {
            println!("     theme: {}", task.theme);
        }
    }
    println!();

    // 8. Bad input is refused with the field named, nothing written.
    println!("▶ The IVR sends a malformed caller number");
    let err = routing
        .route_call(pb::RouteCallRequest {
            call_id: "demo-call-bad".into(),
            caller_phone: "12-not-a-phone".into(),
            ivr_selection: "cards".into(),
            ..Default::default()
        })
        .await
        .expect_err("malformed phone is refused");
    println!("   → {:?}: {}\n", err.code(), err.message());
    Ok(())
}

async fn route(
    routing: &mut RoutingServiceClient<Channel>,
    call_id: &str,
    phone: &str,
    selection: &str,
    story: &str,
) -> anyhow::Result<pb::RouteDecision> {
    println!("▶ {story}");
    println!("   RouteCall {call_id}: caller {phone}, IVR selection \"{selection}\"");
    let response = routing
        .route_call(scenario::route_request(call_id, phone, selection))
        .await
        .with_context(|| format!("RouteCall {call_id} failed"))?;
    let trace_id = response
        .metadata()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let decision = response.into_inner();
    print_decision(&decision);
    println!("     trace id: {trace_id}\n");
    Ok(decision)
}

fn print_decision(d: &pb::RouteDecision) {
    let outcome = pb::RouteOutcome::try_from(d.outcome).unwrap_or_default();
    let head = match outcome {
        pb::RouteOutcome::Assigned => format!(
            "ASSIGNED to {}",
            d.agent
                .as_ref()
                .map(|a| format!("{} ({})", a.agent_id, a.name))
                .unwrap_or_default()
        ),
        pb::RouteOutcome::Queued => format!("QUEUED at position {}", d.queue_position),
        pb::RouteOutcome::CallbackOffered => format!(
            "CALLBACK OFFERED (estimated wait {} s > patience {} s; position {})",
            d.estimated_wait_s, d.patience_s, d.queue_position
        ),
        other => other.as_str_name().to_owned(),
    };
    let tier = pb::ValueTier::try_from(d.tier)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("VALUE_TIER_")
        .to_owned();
    println!(
        "   → {head}   [tier {tier}, language {}{}, patience {} s{}]",
        d.language,
        if d.dialect.is_empty() {
            String::new()
        } else {
            format!("/{}", d.dialect)
        },
        d.patience_s,
        if d.degraded {
            format!(", DEGRADED: {}", d.degraded_reason)
        } else {
            String::new()
        }
    );
    for (i, reason) in d.reasons.iter().enumerate() {
        println!("     {}. {reason}", i + 1);
    }
    if let Some(agent) = &d.agent
        && agent.kind == pb::AgentKind::Field as i32
    {
        println!("     reach her on her own phone {}", agent.phone);
    }
    if let Some(task) = &d.follow_up {
        println!(
            "     follow-up: {} {} for {} by {}",
            task.kind, task.task_id, task.customer_id, task.agent_id
        );
    }
    if let Some(pop) = &d.screen_pop
        && !pop.customer_id.is_empty()
    {
        println!(
            "     screen pop: {} · {} tags · cautions: {}",
            pop.form_of_address,
            pop.tags.len(),
            if pop.cautions.is_empty() {
                "none".to_owned()
            } else {
                pop.cautions.join("; ")
            }
        );
    }
}
