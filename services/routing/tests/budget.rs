//! RouteCall always answers within its budget with something the IVR can
//! act on: a dependency that never answers degrades the decision, and
//! unreachable live state sends the contact to the overflow target.

use std::time::{Duration, Instant};

use rapport_kit::Service as _;
use rapport_proto as pb;
use rapport_proto::routing_service_client::RoutingServiceClient;
use rapport_routing::{App, Config};
use rapport_testkit::redis::TestRedis;
use tonic::transport::Channel;

/// A TCP endpoint that accepts connections and never answers.
async fn blackhole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

async fn start(config: Config) -> RoutingServiceClient<Channel> {
    let app = App::build(config).await.expect("builds");
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    let channel = Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connects");
    RoutingServiceClient::new(channel)
}

fn call(id: &str) -> pb::RouteCallRequest {
    pb::RouteCallRequest {
        call_id: id.into(),
        caller_phone: "139 1000 0002".into(),
        ivr_selection: "general".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_that_never_answer_degrade_within_the_budget() {
    let redis = TestRedis::start().expect("redis");
    let hole = blackhole().await;
    let mut config = Config::for_tests(redis.url(), &hole, &hole);
    config.route_budget = Duration::from_millis(300);
    config.dependency_timeout = Duration::from_secs(10);
    let mut client = start(config).await;
    client
        .login_agent(pb::LoginAgentRequest {
            agent: Some(pb::AgentProfile {
                agent_id: "a1".into(),
                skills: [("general".to_owned(), 7.0)].into_iter().collect(),
                languages: vec!["zh".into()],
                ..Default::default()
            }),
            ready: true,
            ..Default::default()
        })
        .await
        .expect("login");

    let started = Instant::now();
    let decision = client
        .route_call(call("slow-1"))
        .await
        .expect("answers")
        .into_inner();
    let elapsed = started.elapsed();
    // Without the budget the call would wait for the 10 s dependency
    // timeout; the bound is loose so a loaded machine does not flake.
    assert!(elapsed < Duration::from_secs(5), "answered in {elapsed:?}");
    assert_eq!(
        decision.outcome,
        pb::RouteOutcome::Assigned as i32,
        "{decision:?}"
    );
    assert!(decision.degraded);
    assert!(
        decision.degraded_reason.contains("profile timed out"),
        "{}",
        decision.degraded_reason
    );
    assert!(
        decision
            .degraded_reason
            .contains("classification timed out"),
        "{}",
        decision.degraded_reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_answers_the_overflow_target() {
    let mut redis = TestRedis::start().expect("redis");
    if !redis.is_private() {
        // An external TEST_REDIS_URL cannot be stopped by this test.
        return;
    }
    let hole = blackhole().await;
    let mut config = Config::for_tests(redis.url(), &hole, &hole);
    config.route_budget = Duration::from_millis(300);
    config.overflow_target = "queue-overflow-7".into();
    let mut client = start(config).await;
    redis.stop();

    // The first call after the outage also pays for the Redis client
    // noticing the broken connection (known: up to about 0.8 s); it must
    // still answer FALLBACK. Steady state is checked below.
    let first = client
        .route_call(call("first"))
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(
        first.outcome,
        pb::RouteOutcome::Fallback as i32,
        "{first:?}"
    );
    let started = Instant::now();
    let decision = client
        .route_call(call("down-1"))
        .await
        .expect("answers")
        .into_inner();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "answered in {elapsed:?}: {decision:?}"
    );
    assert_eq!(
        decision.outcome,
        pb::RouteOutcome::Fallback as i32,
        "{decision:?}"
    );
    assert_eq!(decision.fallback_target, "queue-overflow-7");
    assert!(decision.degraded);

    // Bad input is still refused as such, not hidden behind a fallback.
    let err = client
        .route_call(pb::RouteCallRequest {
            ivr_selection: "nope".into(),
            ..call("down-2")
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}
