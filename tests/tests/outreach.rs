//! End to end through the real binaries: a customer with a soothing need
//! whose complaint was resolved gets a follow-up in their calling window,
//! an agent is reserved through routing, the dial request reaches the
//! dialer, and the outcome lands in the profile as a contact, a care note
//! and new tags.

use std::time::Duration;

use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions};

fn ts(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soothing_follow_up_from_resolved_complaint_to_care_note() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(MeshOptions::default()).await?;
    let mut routing = mesh.routing_client(0).await?;
    // Blending keeps two ready agents for inbound (the default policy's
    // reserve), so the care call needs a third.
    for id in ["inbound-1", "inbound-2"] {
        routing
            .login_agent(pb::LoginAgentRequest {
                center_id: "default".into(),
                agent: Some(pb::AgentProfile {
                    agent_id: id.into(),
                    name: format!("Inbound {id}"),
                    skills: [("cards".to_owned(), 8.0)].into(),
                    languages: vec!["zh".into()],
                    ..Default::default()
                }),
                ready: true,
            })
            .await?;
    }
    routing
        .login_agent(pb::LoginAgentRequest {
            center_id: "default".into(),
            agent: Some(pb::AgentProfile {
                agent_id: "care-1".into(),
                name: "Care Agent One".into(),
                skills: [("care".to_owned(), 9.0)].into(),
                languages: vec!["zh".into()],
                ..Default::default()
            }),
            ready: true,
        })
        .await?;

    let mut profile = mesh.profile_client().await?;
    let now = chrono::Utc::now();
    profile
        .upsert_customer(pb::UpsertCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "soothe-1".into(),
                name: "Chen Wei".into(),
                time_zone: rapportctl::scenario::daytime_zone(),
                language: "zh".into(),
                phones: vec![pb::Phone {
                    number: "+8613800138000".into(),
                    label: "mobile".into(),
                }],
                declared_needs: vec![pb::NeedWeight {
                    need: pb::Need::Soothing as i32,
                    weight: 0.9,
                }],
                consent: Some(pb::Consent {
                    care_calls: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await?;
    profile
        .record_contact(pb::RecordContactRequest {
            customer_id: "soothe-1".into(),
            contact: Some(pb::ContactRecord {
                contact_id: "complaint-1".into(),
                channel: pb::Channel::Voice as i32,
                direction: pb::Direction::Inbound as i32,
                started_at: Some(ts(now - chrono::Duration::hours(3))),
                queue_wait_s: 45,
                handle_s: 600,
                complaint: true,
                outcome: pb::ContactOutcome::Resolved as i32,
                notes: "card blocked abroad; unblocked and apologised".into(),
                ..Default::default()
            }),
        })
        .await?;

    // The scheduler follows the change feed, plans the follow-up, checks
    // it and reserves the agent; the dialer receives the request.
    let mut outreach = mesh.outreach_client().await?;
    let mut dial = outreach
        .watch_outbound(pb::WatchOutboundRequest {
            dialer_id: "dialer-1".into(),
        })
        .await?
        .into_inner();
    let request = loop {
        let next = tokio::time::timeout(Duration::from_secs(60), dial.message())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no dial request within 60 s; outreach log:\n{}",
                    mesh.outreach.log_text()
                )
            })??
            .ok_or_else(|| anyhow::anyhow!("dial stream ended"))?;
        let task = next.task.clone().unwrap_or_default();
        if task.kind == pb::CareTaskKind::SoothingFollowUp as i32 {
            break next;
        }
        // Other planned care (e.g. the periodic soothing call) may come
        // first; acknowledge and keep reading.
        outreach
            .ack_dial(pb::AckDialRequest {
                dialer_id: "dialer-1".into(),
                delivery_id: next.delivery_id.clone(),
            })
            .await?;
    };
    let task = request.task.clone().expect("the task rides along");
    assert_eq!(task.customer_id, "soothe-1");
    assert_eq!(request.customer_phone, "+8613800138000");
    assert_eq!(
        request.agent_id, "care-1",
        "routing reserved the care agent"
    );
    assert!(!request.idempotency_key.is_empty());
    assert!(request.fencing_token > 0);
    assert!(!task.theme.is_empty());
    assert!(!task.talking_points.is_empty());
    assert!(task.reason.contains("complaint"), "reason: {}", task.reason);
    outreach
        .ack_dial(pb::AckDialRequest {
            dialer_id: "dialer-1".into(),
            delivery_id: request.delivery_id.clone(),
        })
        .await?;
    let agent = routing
        .get_agent(pb::GetAgentRequest {
            center_id: "default".into(),
            agent_id: "care-1".into(),
        })
        .await?
        .into_inner();
    assert_ne!(
        agent.status,
        pb::AgentStatus::Ready as i32,
        "the agent is reserved"
    );

    // A second outcome with a wrong token is refused; the right one lands.
    let stale = outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: request.fencing_token + 1000,
            outcome: pb::CareOutcome::Reached as i32,
            ..Default::default()
        })
        .await
        .expect_err("stale token");
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: request.fencing_token,
            outcome: pb::CareOutcome::Reached as i32,
            notes: "He appreciated that we followed up; the card works abroad now.".into(),
            new_tags: vec![
                "interest:golf".into(),
                "handling_habit:wants written confirmation".into(),
            ],
            agent_id: "care-1".into(),
            topics: vec!["card".into()],
        })
        .await?;

    let export = profile
        .export_customer(pb::ExportCustomerRequest {
            customer_id: "soothe-1".into(),
        })
        .await?
        .into_inner();
    let customer = export.customer.expect("customer");
    let tags: Vec<&str> = customer.tags.iter().map(|t| t.text.as_str()).collect();
    assert!(tags.contains(&"golf"), "tags: {tags:?}");
    assert!(
        tags.contains(&"wants written confirmation"),
        "tags: {tags:?}"
    );
    assert!(
        export
            .care_notes
            .iter()
            .any(|n| n.text.contains("followed up") && n.author == "care-1"),
        "care notes: {:?}",
        export.care_notes
    );
    assert!(
        export
            .contacts
            .iter()
            .any(|c| c.direction == pb::Direction::Outbound as i32
                && c.agent_id == "care-1"
                && c.contact_id.starts_with(&task.task_id)),
        "the care call is in the history"
    );

    // The finished one-shot task is no longer in the care plan.
    let plan = outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "soothe-1".into(),
        })
        .await?
        .into_inner();
    assert!(plan.tasks.iter().all(|t| t.task_id != task.task_id));

    // The scheduler's metrics counted this care call.
    let metrics = mesh.outreach.metrics().await?;
    let value = |name: &str, label: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split([' ', '{']).next() == Some(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        value("rapport_outreach_tasks_claimed_total", "") >= 1.0,
        "{metrics}"
    );
    assert!(
        value(
            "rapport_outreach_tasks_dispatched_total",
            "kind=\"soothing_follow_up\""
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        value("rapport_outreach_dial_deliveries_total", "") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("rapport_outreach_dial_acks_total", "") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("rapport_outreach_outcomes_total", "outcome=\"reached\"") >= 1.0,
        "{metrics}"
    );
    for family in [
        "rapport_outreach_lease_expiries_total",
        "rapport_outreach_dial_redeliveries_total",
        "rapport_outreach_tasks_due",
        "rapport_outreach_dial_unacknowledged",
    ] {
        assert!(metrics.contains(family), "{family} missing: {metrics}");
    }
    mesh.shutdown(Duration::from_secs(10));
    Ok(())
}

/// A callback accepted while the outreach scheduler is down is not lost:
/// routing keeps it in its hand-over set and hands it over once outreach
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_accepted_while_outreach_is_down_reaches_it_later() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(MeshOptions::default()).await?;
    let mut routing = mesh.routing_client(0).await?;
    let mut profile = mesh.profile_client().await?;
    profile
        .upsert_customer(pb::UpsertCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "cb-cust".into(),
                name: "Callback Customer".into(),
                time_zone: rapportctl::scenario::daytime_zone(),
                phones: vec![pb::Phone {
                    number: "+8613800138777".into(),
                    label: "mobile".into(),
                }],
                ..Default::default()
            }),
        })
        .await?;
    // Nobody is logged in, so the caller queues.
    let decision = routing
        .route_call(rapportctl::scenario::route_request(
            "down-1",
            "+8613800138777",
            "cards",
        ))
        .await?
        .into_inner();
    assert!(
        decision.outcome == pb::RouteOutcome::Queued as i32
            || decision.outcome == pb::RouteOutcome::CallbackOffered as i32,
        "{decision:?}"
    );

    mesh.outreach
        .child
        .signal(nix::sys::signal::Signal::SIGKILL)?;
    let _ = mesh.outreach.child.wait();
    let now = chrono::Utc::now();
    routing
        .accept_callback(pb::AcceptCallbackRequest {
            call_id: "down-1".into(),
            window: Some(pb::TimeRange {
                start: Some(ts(now + chrono::Duration::minutes(10))),
                end: Some(ts(now + chrono::Duration::minutes(70))),
            }),
            ..Default::default()
        })
        .await?;

    // Outreach comes back on the same address; the hand-over loop delivers.
    let env = [
        ("RAPPORT_REDIS_URL", mesh.redis.url().to_owned()),
        ("RAPPORT_PROFILE_URL", mesh.profile.url()),
        ("RAPPORT_ROUTING_URL", mesh.routing[0].url()),
    ];
    let mut restarted = rapportctl::mesh::spawn_at(
        mesh.dir.path(),
        "outreach",
        &env,
        Some(mesh.outreach.addr.clone()),
    )?;
    rapportctl::mesh::wait_serving(&mut restarted, Duration::from_secs(30)).await?;
    mesh.outreach = restarted;
    let mut outreach = mesh.outreach_client().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let plan = outreach
            .get_care_plan(pb::GetCarePlanRequest {
                customer_id: "cb-cust".into(),
            })
            .await?
            .into_inner();
        if let Some(task) = plan.tasks.iter().find(|t| t.task_id == "cb:down-1") {
            assert_eq!(task.kind, pb::CareTaskKind::Callback as i32);
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the callback never reached outreach; routing log:\n{}",
            mesh.routing[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let follow_ups = routing
        .list_follow_ups(pb::ListFollowUpsRequest {
            kind: "callback".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(follow_ups.tasks.len(), 1);
    mesh.shutdown(Duration::from_secs(10));
    Ok(())
}
