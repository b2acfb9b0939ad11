//! The classification service over gRPC: health, the reference case, bad
//! input, the live-transcript stream, hot reload, and startup on a bad
//! policy.

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

    // A message over the server-wide limit is refused before it is decoded.
    let huge = ClassifyRequest {
        text: "x".repeat(rapport_kit::validate::MAX_MESSAGE_BYTES + 1),
        ..reference_request()
    };
    let err = running
        .client
        .classify(huge)
        .await
        .expect_err("over the message limit");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());

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

fn snippet(text: &str) -> rapport_proto::ClassifyStreamRequest {
    rapport_proto::ClassifyStreamRequest {
        request: None,
        snippet: text.into(),
    }
}

#[tokio::test]
async fn classify_stream_re_emits_when_the_classification_changes() {
    let mut running = Running::start(Config::for_tests()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut responses = running
        .client
        .classify_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();

    tx.send(rapport_proto::ClassifyStreamRequest {
        request: Some(reference_request()),
        snippet: "您好，我想问一下理财产品的事情".into(),
    })
    .await
    .expect("sends");
    let first = responses.message().await.expect("ok").expect("first");
    assert!(!first.moment_of_truth.as_ref().expect("moment").flagged);
    assert_eq!(first.tier(), ValueTier::Vip);

    // Calm chat may or may not change the need; the card fraud must raise
    // a moment of truth, and the regulator an escalation threat.
    tx.send(snippet("好的，谢谢")).await.expect("sends");
    tx.send(snippet("什么？我的卡被盗刷了五万块？我非常着急！！"))
        .await
        .expect("sends");
    let mut emitted = 0;
    let moment = loop {
        let c = responses.message().await.expect("ok").expect("emitted");
        emitted += 1;
        if c.moment_of_truth.as_ref().is_some_and(|m| m.flagged) {
            break c;
        }
        assert!(emitted < 3, "no moment of truth after the fraud snippet");
    };
    assert_ne!(
        moment.emotion.as_ref().map(|e| e.emotion()),
        Some(rapport_proto::Emotion::Calm)
    );

    tx.send(snippet("再不处理我就去找银保监会！"))
        .await
        .expect("sends");
    let threat = responses.message().await.expect("ok").expect("third");
    assert!(
        threat
            .risk_flags
            .iter()
            .any(|f| f.kind() == rapport_proto::RiskKind::EscalationThreat)
    );

    drop(tx);
    assert!(
        responses.message().await.expect("ok").is_none(),
        "stream ends"
    );
    running.stop().await;
}

#[tokio::test]
async fn classify_stream_refuses_an_oversize_snippet() {
    let config = Config {
        max_text_bytes: 64,
        ..Config::for_tests()
    };
    let mut running = Running::start(config).await;
    let requests = tokio_stream::iter(vec![snippet("hello"), snippet(&"x".repeat(65))]);
    let mut responses = running
        .client
        .classify_stream(requests)
        .await
        .expect("stream opens")
        .into_inner();
    assert!(responses.message().await.expect("first ok").is_some());
    let err = responses.message().await.expect_err("oversize");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("snippet:"), "{}", err.message());
    running.stop().await;
}

#[tokio::test]
async fn the_policy_reloads_on_file_change_and_sighup_and_keeps_the_old_one_on_a_bad_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let builtin = rapport_classification::policy::BUILTIN_POLICY;
    let path = dir.path().join("policy.toml");
    let version =
        |v: &str| builtin.replacen("version = \"2025.1\"", &format!("version = \"{v}\""), 1);
    std::fs::write(&path, version("v1")).expect("writes");
    let config = Config {
        policy: Some(path.clone()),
        policy_poll: Duration::from_millis(50),
        ..Config::for_tests()
    };
    let mut running = Running::start(config).await;
    let current = async |client: &mut ClassificationServiceClient<GrpcChannel>| {
        client
            .classify(ClassifyRequest::default())
            .await
            .expect("classifies")
            .into_inner()
            .policy_version
    };
    assert_eq!(current(&mut running.client).await, "v1");

    // A changed file is picked up by the poll.
    std::fs::write(&path, version("v2")).expect("writes");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = current(&mut running.client).await;
        if seen == "v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "v2");

    // A bad file (out-of-range weight) is refused; v2 stays in force.
    let bad = version("v3").replacen("exclamation_anger = 0.4", "exclamation_anger = 7", 1);
    std::fs::write(&path, bad).expect("writes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(current(&mut running.client).await, "v2");

    // SIGHUP reloads at once, without waiting for the poll.
    std::fs::write(&path, version("v4")).expect("writes");
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGHUP)
        .expect("signal");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = current(&mut running.client).await;
        if seen == "v4" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "v4");
    running.stop().await;
}

#[tokio::test]
async fn a_reload_reports_the_bad_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.toml");
    let builtin = rapport_classification::policy::BUILTIN_POLICY;
    std::fs::write(&path, builtin).expect("writes");
    let config = Config {
        policy: Some(path.clone()),
        policy_poll: Duration::ZERO,
        ..Config::for_tests()
    };
    let app = App::build(config).await.expect("builds");
    std::fs::write(
        &path,
        builtin.replacen("min_share = 0.08", "min_shar = 0.08", 1),
    )
    .expect("writes");
    let err = app.reload().expect_err("unknown key");
    let expected = builtin
        .lines()
        .position(|l| l.starts_with("min_share = 0.08"))
        .map(|i| i + 1);
    assert_eq!(err.line(), expected);
    assert!(err.to_string().contains("min_shar"), "{err}");
    assert_eq!(app.policy().current().version(), "2025.1");
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
