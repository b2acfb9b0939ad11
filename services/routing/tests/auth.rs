//! With bearer-token auth on, an agent desktop acts only for its own agent;
//! other roles are held to the per-RPC policy.

use rapport_kit::Service as _;
use rapport_kit::security::AuthMode;
use rapport_proto as pb;
use rapport_proto::routing_service_client::RoutingServiceClient;
use rapport_routing::{App, Config};
use rapport_testkit::redis::TestRedis;
use tonic::transport::Channel;

const DESK_LIN: &str = "desk-lin-0123456789abcdefghijkl";
const IVR: &str = "ivr-main-0123456789abcdefghijkl";
const ADMIN: &str = "admin-0123456789abcdefghijklmn";

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

fn login(agent_id: &str) -> pb::LoginAgentRequest {
    pb::LoginAgentRequest {
        agent: Some(pb::AgentProfile {
            agent_id: agent_id.into(),
            skills: [("general".to_owned(), 7.0)].into_iter().collect(),
            languages: vec!["zh".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_desktop_acts_only_for_its_own_agent() {
    let redis = TestRedis::start().expect("redis");
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[tokens.desk-lin]\ntoken = \"{DESK_LIN}\"\nrole = \"agent-desktop\"\nagent_id = \"lin\"\n\n\
             [tokens.ivr]\ntoken = \"{IVR}\"\nrole = \"ivr\"\n\n\
             [tokens.admin]\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
        ),
    )
    .expect("write tokens");
    let mut config = Config::for_tests(redis.url(), "http://127.0.0.1:1", "http://127.0.0.1:1");
    config.server.auth_mode = AuthMode::Tokens;
    config.server.auth_tokens = Some(tokens);
    let app = App::build(config).await.expect("builds");
    let url = format!("http://{}", app.local_addr());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut client = RoutingServiceClient::new(channel);

    client
        .login_agent(with_token(login("lin"), DESK_LIN))
        .await
        .expect("lin's desktop logs lin in");
    let denied = client
        .login_agent(with_token(login("wang"), DESK_LIN))
        .await
        .expect_err("lin's desktop cannot log wang in");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = client
        .set_agent_status(with_token(
            pb::SetAgentStatusRequest {
                agent_id: "wang".into(),
                status: pb::AgentStatus::Ready as i32,
                ..Default::default()
            },
            DESK_LIN,
        ))
        .await
        .expect_err("nor set wang's status");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // The IVR's role does not include agent RPCs at all.
    let denied = client
        .login_agent(with_token(login("lin"), IVR))
        .await
        .expect_err("the IVR cannot log agents in");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // An admin may act for anyone; the call reaches the handler.
    let state = client
        .get_agent(with_token(
            pb::GetAgentRequest {
                agent_id: "lin".into(),
                ..Default::default()
            },
            ADMIN,
        ))
        .await
        .expect("admin reads lin")
        .into_inner();
    assert_eq!(state.profile.expect("profile").agent_id, "lin");

    let missing = client
        .get_agent(pb::GetAgentRequest {
            agent_id: "lin".into(),
            ..Default::default()
        })
        .await
        .expect_err("no token");
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
}
