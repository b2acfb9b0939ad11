//! The embedded SQLite file is created on first start and keeps every write
//! across a restart of the service; bad database settings fail startup
//! with a clear error.

use rapport_kit::Service as _;
use rapport_profile::{App, Config};
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::{self as pb, Channel, ContactOutcome, Direction, TagKind};

/// Builds and runs the service, calls `work` with a client, then shuts the
/// service down and waits for it to finish draining.
async fn with_service<F, Fut>(database_url: &str, work: F)
where
    F: FnOnce(ProfileServiceClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let app = App::build(Config::for_tests(database_url))
        .await
        .expect("builds");
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let client = ProfileServiceClient::connect(url).await.expect("connects");
    work(client).await;
    stop.send(()).expect("server still running");
    server.await.expect("joins").expect("clean shutdown");
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("profile.db");
    let url = format!("sqlite://{}", file.display());
    assert!(!file.exists());

    let mut first_view = None;
    with_service(&url, |mut client| async move {
        client
            .upsert_customer(pb::UpsertCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: "C-VIP-001".into(),
                    name: "陈先生".into(),
                    dialect: "minnan".into(),
                    city: "Xiamen".into(),
                    assets: 8_000_000,
                    phones: vec![pb::Phone {
                        number: "138 0013 8000".into(),
                        label: "mobile".into(),
                    }],
                    ..Default::default()
                }),
            })
            .await
            .expect("upsert");
        client
            .add_tags(pb::AddTagsRequest {
                customer_id: "C-VIP-001".into(),
                tags: vec![pb::CommunicationTag {
                    kind: TagKind::HandlingHabit as i32,
                    text: "wants written confirmation".into(),
                    ..Default::default()
                }],
            })
            .await
            .expect("add tag");
        client
            .record_contact(pb::RecordContactRequest {
                customer_id: "C-VIP-001".into(),
                contact: Some(pb::ContactRecord {
                    contact_id: "call-1".into(),
                    channel: Channel::Voice as i32,
                    direction: Direction::Inbound as i32,
                    started_at: Some(prost_types::Timestamp {
                        seconds: chrono::Utc::now().timestamp() - 600,
                        nanos: 0,
                    }),
                    queue_wait_s: 34,
                    outcome: ContactOutcome::Unresolved as i32,
                    complaint: true,
                    ..Default::default()
                }),
            })
            .await
            .expect("record contact");
    })
    .await;
    assert!(
        file.exists(),
        "the database file was created on first start"
    );

    with_service(&url, |mut client| {
        let first_view = &mut first_view;
        async move {
            let view = client
                .lookup_by_phone(pb::LookupByPhoneRequest {
                    phone: "+86 138 0013 8000".into(),
                })
                .await
                .expect("still there after the restart")
                .into_inner();
            *first_view = Some(view);
        }
    })
    .await;

    let view = first_view.expect("looked up");
    let customer = view.customer.expect("customer");
    assert_eq!(customer.customer_id, "C-VIP-001");
    assert_eq!(customer.name, "陈先生");
    assert_eq!(customer.assets, 8_000_000);
    assert_eq!(customer.version, 2);
    assert_eq!(customer.tags.len(), 1);
    let summary = view.summary.expect("summary");
    assert_eq!(summary.total_contacts, 1);
    assert_eq!(summary.waits_before_complaints.len(), 1);
    assert_eq!(summary.waits_before_complaints[0].wait_s, 34);

    // A third start on a fully migrated file changes nothing.
    with_service(&url, |mut client| async move {
        let view = client
            .get_profile(pb::GetProfileRequest {
                customer_id: "C-VIP-001".into(),
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(view.customer.expect("customer").version, 2);
    })
    .await;
}

#[tokio::test]
async fn bad_database_settings_fail_startup_clearly() {
    let err = App::build(Config::for_tests("mysql://rapport:hunter2@db/rapport"))
        .await
        .err()
        .expect("unsupported scheme");
    let message = format!("{err:#}");
    assert!(message.contains("unsupported database URL"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password stays out: {message}"
    );

    let err = App::build(Config::for_tests(
        "sqlite:///nonexistent-rapport-dir/sub/profile.db",
    ))
    .await
    .err()
    .expect("no such directory");
    let message = format!("{err:#}");
    assert!(
        message.contains("failed to open the profile database"),
        "{message}"
    );

    let err = App::build(Config::for_tests(
        "postgres://rapport:hunter2@127.0.0.1:1/rapport",
    ))
    .await
    .err()
    .expect("nothing listens on port 1");
    let message = format!("{err:#}");
    assert!(
        message.contains("PostgreSQL at 127.0.0.1:1/rapport"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password stays out: {message}"
    );
}
