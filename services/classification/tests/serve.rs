//! The classification service over gRPC: health, the reference case, bad
//! input, the not-yet-implemented stream, and startup on a bad policy.

use std::time::{Duration, SystemTime};

use rapport_classification::{App, Config};
use rapport_kit::Service as _;
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::{
    Channel, ClassifyRequest, ContactContext, Customer, HistorySummary, ProfileView, ValueTier,
    WaitEvidence,
};
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// A running service and a client; stops the server on `stop`.
struct Running {
    client: ClassificationServiceClient<GrpcChannel>,
    channel: GrpcChannel,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(config: Config) -> Self {
        let app = App::build(config).await.expect("builds");
        let url = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let channel = GrpcChannel::from_shared(url)
            .expect("valid url")
            .connect()
            .await
            .expect("connects");
        Self {
            client: ClassificationServiceClient::new(channel.clone()),
            channel,
            stop,
            server,
        }
    }

    async fn stop(self) {
        self.stop.send(()).expect("server still running");
        self.server.await.expect("joins").expect("clean shutdown");
    }
}

fn ago(days: u64) -> prost_types::Timestamp {
    let at = SystemTime::now() - Duration::from_secs(days * 86_400);
    prost_types::Timestamp::from(at)
}

/// DESIGN.md §3's reference customer: 8,000,000 in deposits, from Xiamen,
/// three complaints after transfer waits over 30 s.
fn reference_request() -> ClassifyRequest {
    let complaint = |wait_s, days| WaitEvidence {
        wait_s,
        complaint: true,
        abandoned: false,
        at: Some(ago(days)),
    };
    ClassifyRequest {
        profile: Some(ProfileView {
            customer: Some(Customer {
                customer_id: "C-REF".into(),
                city: "Xiamen".into(),
                occupation: "private business owner".into(),
                age_band: "35-44".into(),
                assets: 8_000_000,
                ..Customer::default()
            }),
            summary: Some(HistorySummary {
                total_contacts: 20,
                waits_before_complaints: vec![
                    complaint(45, 3),
                    complaint(38, 30),
                    complaint(34, 90),
                ],
                ..HistorySummary::default()
            }),
        }),
        contact: Some(ContactContext {
            channel: Channel::Voice.into(),
            ivr_selection: "personal_wealth".into(),
            started_at: None,
        }),
        ..ClassifyRequest::default()
    }
}

#[tokio::test]
async fn classifies_the_reference_case_over_grpc() {
    let mut running = Running::start(Config::for_tests()).await;

    let status = HealthClient::new(running.channel.clone())
        .check(HealthCheckRequest {
            service: "rapport.v1.ClassificationService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let c = running
        .client
        .classify(reference_request())
        .await
        .expect("classifies")
        .into_inner();
    assert_eq!(c.tier(), ValueTier::Vip);
    assert_eq!(c.tier_reason, "assets 8,000,000 ≥ VIP threshold 5,000,000");
    assert_eq!((c.language.as_str(), c.dialect.as_str()), ("zh", "minnan"));
    assert!(c.language_reason.contains("inferred from city Xiamen"));
    assert!(c.patience_s < 30, "patience {}", c.patience_s);
    assert!(
        c.patience_reason
            .contains("3 complaints/hang-ups after waits of 34–45 s")
    );
    assert!(!c.policy_version.is_empty());

    running.stop().await;
}

#[tokio::test]
async fn an_unknown_caller_with_empty_text_gets_defaults() {
    let mut running = Running::start(Config::for_tests()).await;
    let c = running
        .client
        .classify(ClassifyRequest::default())
        .await
        .expect("classifies")
        .into_inner();
    assert_eq!(c.tier(), ValueTier::Standard);
    assert_eq!(c.tier_reason, "unknown caller");
    assert_eq!(c.language, "zh");
    assert_eq!(c.patience_s, 90);
    running.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let config = Config {
        max_text_bytes: 64,
        ..Config::for_tests()
    };
    let mut running = Running::start(config).await;

    let at_limit = ClassifyRequest {
        text: "x".repeat(64),
        ..reference_request()
    };
    assert!(running.client.classify(at_limit).await.is_ok());

    let oversize = ClassifyRequest {
        text: "x".repeat(65),
        ..reference_request()
    };
    let err = running
        .client
        .classify(oversize)
        .await
        .expect_err("too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("text:"), "{}", err.message());

    let mut unknown_channel = reference_request();
    if let Some(contact) = unknown_channel.contact.as_mut() {
        contact.channel = 99;
    }
    let err = running
        .client
        .classify(unknown_channel)
        .await
        .expect_err("unknown enum");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("contact.channel:"),
        "{}",
        err.message()
    );

    let bad_hint = ClassifyRequest {
        language_hint: "?".into(),
        ..reference_request()
    };
    let err = running.client.classify(bad_hint).await.expect_err("hint");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("language_hint:"),
        "{}",
        err.message()
    );

    running.stop().await;
}

#[tokio::test]
async fn classify_stream_is_unimplemented_until_its_issue() {
    let mut running = Running::start(Config::for_tests()).await;
    let requests = tokio_stream::iter(vec![rapport_proto::ClassifyStreamRequest::default()]);
    let err = running
        .client
        .classify_stream(requests)
        .await
        .expect_err("not implemented yet");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(
        err.message().contains("classification issue"),
        "{}",
        err.message()
    );
    running.stop().await;
}

#[tokio::test]
async fn a_policy_file_is_used_and_a_bad_one_fails_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let builtin = rapport_classification::policy::BUILTIN_POLICY;

    let custom = dir.path().join("custom.toml");
    let text = builtin
        .replacen("version = \"2025.1\"", "version = \"custom-7\"", 1)
        .replacen("assets = 5_000_000", "assets = 10_000_000", 1);
    std::fs::write(&custom, text).expect("writes");
    let config = Config {
        policy: Some(custom),
        ..Config::for_tests()
    };
    let mut running = Running::start(config).await;
    let c = running
        .client
        .classify(reference_request())
        .await
        .expect("classifies")
        .into_inner();
    assert_eq!(c.policy_version, "custom-7");
    assert_eq!(c.tier(), ValueTier::Preferred);
    running.stop().await;

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, builtin.replacen("factor = 0.8", "factor = 1.5", 1)).expect("writes");
    let config = Config {
        policy: Some(bad),
        ..Config::for_tests()
    };
    let message = match App::build(config).await {
        Ok(_) => panic!("a bad policy must fail startup"),
        Err(e) => format!("{e:#}"),
    };
    assert!(message.contains("bad.toml"), "{message}");
    assert!(message.contains("patience.factor = 1.5"), "{message}");
    assert!(message.contains("line "), "{message}");
}
