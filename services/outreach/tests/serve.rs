//! The outreach service serves health and its contract, and drains on
//! shutdown.

use rapport_kit::Service as _;
use rapport_outreach::{App, Config};
use rapport_proto::outreach_service_client::OutreachServiceClient;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[tokio::test]
async fn serves_health_and_answers_unimplemented_until_its_issue_lands() {
    let app = App::build(Config::for_tests()).await.expect("builds");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");

    let channel = tonic::transport::Channel::from_shared(url.clone())
        .expect("valid url")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: "rapport.v1.OutreachService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut client = OutreachServiceClient::connect(url).await.expect("connects");
    let err = client
        .list_due(rapport_proto::ListDueRequest::default())
        .await
        .expect_err("not implemented yet");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    stop.send(()).expect("server still running");
    server.await.expect("joins").expect("clean shutdown");
}
