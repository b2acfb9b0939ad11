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

/// Reads the change feed from `token` until it is caught up.
async fn changes_from(
    client: &mut ProfileServiceClient<tonic::transport::Channel>,
    token: &str,
) -> Vec<pb::ProfileChange> {
    use futures::StreamExt as _;
    let stream = client
        .watch_changes(pb::WatchChangesRequest {
            resume_token: token.into(),
            stop_at_end: true,
        })
        .await
        .expect("watch")
        .into_inner();
    stream.map(|c| c.expect("change")).collect::<Vec<_>>().await
}

#[tokio::test]
async fn the_change_feed_resumes_from_a_token_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("profile.db").display());
    let contact = |id: &str, complaint: bool| pb::RecordContactRequest {
        customer_id: "C-1".into(),
        contact: Some(pb::ContactRecord {
            contact_id: id.into(),
            channel: Channel::Voice as i32,
            direction: Direction::Inbound as i32,
            started_at: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() - 60,
                nanos: 0,
            }),
            complaint,
            ..Default::default()
        }),
    };

    let mut token = String::new();
    with_service(&url, |mut client| {
        let token = &mut token;
        let contact = &contact;
        async move {
            // A live watcher sees a write as it happens.
            let mut live = client
                .watch_changes(pb::WatchChangesRequest::default())
                .await
                .expect("watch")
                .into_inner();
            client
                .upsert_customer(pb::UpsertCustomerRequest {
                    customer: Some(pb::Customer {
                        customer_id: "C-1".into(),
                        ..Default::default()
                    }),
                })
                .await
                .expect("upsert");
            let first = tokio::time::timeout(std::time::Duration::from_secs(5), live.message())
                .await
                .expect("in time")
                .expect("stream")
                .expect("a change");
            assert_eq!(first.kind, pb::ChangeKind::CustomerUpserted as i32);
            assert_eq!(first.customer_id, "C-1");
            drop(live);

            client
                .record_contact(contact("call-1", false))
                .await
                .expect("record");
            let seen = changes_from(&mut client, "").await;
            assert_eq!(seen.len(), 2);
            *token = seen[1].resume_token.clone();
        }
    })
    .await;

    // Written while nobody watched, then the service restarts.
    with_service(&url, |mut client| async move {
        client
            .record_contact(contact("call-2", true))
            .await
            .expect("record");
        client
            .set_consent(pb::SetConsentRequest {
                customer_id: "C-1".into(),
                consent: Some(pb::Consent {
                    do_not_call: true,
                    ..Default::default()
                }),
            })
            .await
            .expect("consent");
    })
    .await;

    with_service(&url, |mut client| {
        let token = token.clone();
        async move {
            let rest = changes_from(&mut client, &token).await;
            let kinds: Vec<(i32, &str)> =
                rest.iter().map(|c| (c.kind, c.ref_id.as_str())).collect();
            assert_eq!(
                kinds,
                [
                    (pb::ChangeKind::Complaint as i32, "call-2"),
                    (pb::ChangeKind::ConsentChanged as i32, ""),
                ],
                "exactly the changes after the token, in order"
            );
            let bad = client
                .watch_changes(pb::WatchChangesRequest {
                    resume_token: "yesterday".into(),
                    stop_at_end: true,
                })
                .await
                .expect_err("refused");
            assert_eq!(bad.code(), tonic::Code::InvalidArgument);
            assert!(bad.message().starts_with("resume_token:"), "{bad:?}");
        }
    })
    .await;
}
