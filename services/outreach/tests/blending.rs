//! Blending against a real routing service: care calls start only while
//! routing reports enough ready agents beyond the inbound reserve, and not
//! at all while inbound callers wait.

use std::time::Duration;

use rapport_kit::Service as _;
use rapport_proto as pb;
use rapport_proto::outreach_service_client::OutreachServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::routing_service_client::RoutingServiceClient;
use rapport_testkit::redis::TestRedis;
use tonic::transport::Channel;

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connects")
}

fn agent(id: &str, skill: &str) -> pb::LoginAgentRequest {
    pb::LoginAgentRequest {
        center_id: "default".into(),
        agent: Some(pb::AgentProfile {
            agent_id: id.into(),
            name: format!("Agent {id}"),
            skills: [(skill.to_owned(), 8.0)].into(),
            languages: vec!["zh".into()],
            ..Default::default()
        }),
        ready: true,
    }
}

/// Waits up to `wait` for a dial request; `None` when none came.
async fn next_dial(
    stream: &mut tonic::Streaming<pb::DialRequest>,
    wait: Duration,
) -> Option<pb::DialRequest> {
    tokio::time::timeout(wait, stream.message())
        .await
        .ok()
        .map(|m| m.expect("stream ok").expect("stream open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn care_calls_wait_for_agents_beyond_the_inbound_reserve() {
    let redis = TestRedis::start().expect("redis");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let profile = rapport_profile::App::build(rapport_profile::Config::for_tests(db))
        .await
        .expect("profile builds");
    let profile_url = format!("http://{}", profile.local_addr());
    tokio::spawn(profile.run(std::future::pending()));
    // Classification is not running: routing decides on skills alone.
    let routing = rapport_routing::App::build(rapport_routing::Config::for_tests(
        redis.url(),
        &profile_url,
        "http://127.0.0.1:9",
    ))
    .await
    .expect("routing builds");
    let routing_url = format!("http://{}", routing.local_addr());
    let routing_addr = routing.local_addr();
    tokio::spawn(routing.run(std::future::pending()));

    // The default policy keeps 2 ready agents for inbound and needs 1 more.
    let mut config = rapport_outreach::Config::for_tests(redis.url(), &profile_url);
    config.routing_url = routing_url;
    config.follow_feed = false;
    let outreach = rapport_outreach::App::build(config)
        .await
        .expect("outreach builds");
    let outreach_addr = outreach.local_addr();
    tokio::spawn(outreach.run(std::future::pending()));

    // A customer in a zone where it is daytime now, who agreed to care calls.
    let utc_hour = chrono::Timelike::hour(&chrono::Utc::now()) as i32;
    let offset = (13 - utc_hour + 36) % 24 - 12;
    let zone = match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let mut profiles = ProfileServiceClient::new(
        channel(
            profile_url
                .trim_start_matches("http://")
                .parse()
                .expect("addr"),
        )
        .await,
    );
    profiles
        .upsert_customer(pb::UpsertCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "blend-1".into(),
                name: "Blend Customer".into(),
                time_zone: zone,
                phones: vec![pb::Phone {
                    number: "+8613800138123".into(),
                    label: "mobile".into(),
                }],
                consent: Some(pb::Consent {
                    care_calls: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("customer stored");

    let mut routing = RoutingServiceClient::new(channel(routing_addr).await);
    routing
        .login_agent(agent("in-1", "cards"))
        .await
        .expect("login");
    routing
        .login_agent(agent("care-1", "care"))
        .await
        .expect("login");

    let mut outreach = OutreachServiceClient::new(channel(outreach_addr).await);
    let mut dial = outreach
        .watch_outbound(pb::WatchOutboundRequest {
            dialer_id: "d1".into(),
        })
        .await
        .expect("stream")
        .into_inner();
    let task = outreach
        .schedule_care(pb::ScheduleCareRequest {
            customer_id: "blend-1".into(),
            reason: "blending test".into(),
            ..Default::default()
        })
        .await
        .expect("scheduled")
        .into_inner();

    // Two ready agents are exactly the inbound reserve: nothing starts.
    assert!(
        next_dial(&mut dial, Duration::from_secs(3)).await.is_none(),
        "a care call started with only the inbound reserve ready"
    );
    let plan = outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "blend-1".into(),
        })
        .await
        .expect("plan")
        .into_inner();
    let waiting = plan
        .tasks
        .iter()
        .find(|t| t.task_id == task.task_id)
        .expect("still planned");
    assert_eq!(waiting.state, pb::CareTaskState::Pending as i32);
    assert_eq!(waiting.attempt, 0, "never tried");

    // A third ready agent leaves room beyond the reserve: the care call
    // starts, and routing reserved the care agent for it.
    routing
        .login_agent(agent("in-2", "cards"))
        .await
        .expect("login");
    let request = next_dial(&mut dial, Duration::from_secs(20))
        .await
        .expect("the care call starts once agents are free beyond the reserve");
    assert_eq!(
        request.task.as_ref().map(|t| t.task_id.as_str()),
        Some(task.task_id.as_str())
    );
    assert_eq!(request.agent_id, "care-1");
}
