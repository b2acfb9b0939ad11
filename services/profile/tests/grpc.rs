//! The profile service over gRPC: a real server (port 0, a temporary SQLite
//! file) and a tonic client. Checks the status codes callers act on, that
//! bad input is refused naming the field and writes nothing, and the CRM
//! RPCs (partial update with optimistic concurrency, listing, search,
//! notes, preferences, consent, events, the two streams, erase/export).

use prost_types::Timestamp;
use rapport_kit::Service as _;
use rapport_profile::{App, Config};
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::{self as pb, Channel, ContactOutcome, Direction, Need, TagKind, Weekday};
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// A running service on a throwaway database; stops when dropped.
struct Running {
    client: ProfileServiceClient<GrpcChannel>,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}", dir.path().join("profile.db").display());
        let app = App::build(Config::for_tests(db)).await.expect("builds");
        let url = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let client = ProfileServiceClient::connect(url.clone())
            .await
            .expect("connects");
        Self {
            client,
            url,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("joins").expect("clean shutdown");
        }
    }
}

fn now_ts(offset_s: i64) -> Timestamp {
    Timestamp {
        seconds: chrono::Utc::now().timestamp() + offset_s,
        nanos: 0,
    }
}

/// The reference VIP customer of DESIGN.md §3.
fn reference(id: &str, phone: &str) -> pb::Customer {
    pb::Customer {
        customer_id: id.into(),
        name: "陈先生".into(),
        form_of_address: "陈总".into(),
        locale: "zh-CN".into(),
        language: "zh".into(),
        dialect: "minnan".into(),
        region: "Fujian".into(),
        city: "Xiamen".into(),
        time_zone: "Asia/Shanghai".into(),
        age_band: "35-44".into(),
        occupation: "private business owner".into(),
        assets: 8_000_000,
        segment: "private-banking".into(),
        declared_needs: vec![pb::NeedWeight {
            need: Need::Recognition as i32,
            weight: 0.8,
        }],
        phones: vec![pb::Phone {
            number: phone.into(),
            label: "mobile".into(),
        }],
        tags: vec![pb::CommunicationTag {
            kind: TagKind::AddressForm as i32,
            text: "陈总".into(),
            author: "crm".into(),
            ..Default::default()
        }],
        preferences: Some(pb::Preferences {
            dedicated_field_manager_id: "FM-7".into(),
            preferred_channel: Channel::Voice as i32,
            contact_windows: vec![pb::ContactWindow {
                days: vec![Weekday::Monday as i32],
                start_minute: 540,
                end_minute: 720,
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn contact(id: &str, wait_s: u32, complaint: bool) -> pb::ContactRecord {
    pb::ContactRecord {
        contact_id: id.into(),
        channel: Channel::Voice as i32,
        direction: Direction::Inbound as i32,
        started_at: Some(now_ts(-3_600)),
        ivr_selection: "personal_wealth_products".into(),
        queue_wait_s: wait_s,
        handle_s: 180,
        agent_id: "A-1".into(),
        outcome: if complaint {
            ContactOutcome::Unresolved as i32
        } else {
            ContactOutcome::Resolved as i32
        },
        complaint,
        ..Default::default()
    }
}

/// Asserts INVALID_ARGUMENT naming `field`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}:")),
        "expected the message to name {field}, got {:?}",
        status.message()
    );
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code) -> String {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    status.message().to_owned()
}

#[tokio::test]
async fn the_reference_customer_round_trips_over_grpc() {
    let running = Running::start().await;
    let mut client = running.client.clone();

    let channel = GrpcChannel::from_shared(running.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "rapport.v1.ProfileService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let stored = client
        .upsert_customer(pb::UpsertCustomerRequest {
            customer: Some(reference("C-VIP-001", "138 0013 8000")),
        })
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.phones[0].number, "+8613800138000");
    assert_eq!(stored.tags.len(), 1);
    assert!(!stored.tags[0].tag_id.is_empty());

    for (i, (wait, complaint)) in [(34, true), (12, false), (38, true), (45, true)]
        .into_iter()
        .enumerate()
    {
        let created = client
            .record_contact(pb::RecordContactRequest {
                customer_id: "C-VIP-001".into(),
                contact: Some(contact(&format!("call-{i}"), wait, complaint)),
            })
            .await
            .expect("record")
            .into_inner()
            .created;
        assert!(created);
    }
    let repeat = client
        .record_contact(pb::RecordContactRequest {
            customer_id: "C-VIP-001".into(),
            contact: Some(contact("call-0", 34, true)),
        })
        .await
        .expect("repeat")
        .into_inner();
    assert!(!repeat.created);

    for phone in ["13800138000", "+86 138-0013-8000", "008613800138000"] {
        let view = client
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone: phone.into(),
            })
            .await
            .expect("lookup")
            .into_inner();
        let customer = view.customer.expect("customer");
        assert_eq!(customer.customer_id, "C-VIP-001");
        assert_eq!(customer.dialect, "minnan");
        let summary = view.summary.expect("summary");
        assert_eq!(summary.total_contacts, 4);
        assert_eq!(summary.complaints_90d, 3);
        let mut waits: Vec<u32> = summary
            .waits_before_complaints
            .iter()
            .map(|w| w.wait_s)
            .collect();
        waits.sort_unstable();
        assert_eq!(waits, [34, 38, 45]);
        assert_eq!(summary.recent_contacts.len(), 4);
    }

    let added = client
        .add_tags(pb::AddTagsRequest {
            customer_id: "C-VIP-001".into(),
            tags: vec![pb::CommunicationTag {
                kind: TagKind::CallPattern as i32,
                text: "calls Monday mornings".into(),
                expires_at: Some(now_ts(86_400)),
                ..Default::default()
            }],
        })
        .await
        .expect("add tags")
        .into_inner()
        .tags;
    assert_eq!(added.len(), 1);
    client
        .remove_tag(pb::RemoveTagRequest {
            customer_id: "C-VIP-001".into(),
            tag_id: added[0].tag_id.clone(),
        })
        .await
        .expect("remove tag");
    let customer = client
        .get_profile(pb::GetProfileRequest {
            customer_id: "C-VIP-001".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .customer
        .expect("customer");
    assert_eq!(customer.version, 3, "upsert, add, remove");
    assert_eq!(customer.tags.len(), 1);

    running.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let running = Running::start().await;
    let mut client = running.client.clone();

    let upsert = |c: Option<pb::Customer>| pb::UpsertCustomerRequest { customer: c };
    let bad = |edit: fn(&mut pb::Customer)| {
        let mut c = reference("C-BAD", "13800138000");
        edit(&mut c);
        upsert(Some(c))
    };
    let cases: Vec<(pb::UpsertCustomerRequest, &str)> = vec![
        (upsert(None), "customer"),
        (
            bad(|c| c.customer_id = String::new()),
            "customer.customer_id",
        ),
        (
            bad(|c| c.customer_id = "C BAD".into()),
            "customer.customer_id",
        ),
        (
            bad(|c| c.customer_id = "C".repeat(65)),
            "customer.customer_id",
        ),
        (
            bad(|c| c.phones[0].number = "12".into()),
            "customer.phones[0].number",
        ),
        (
            bad(|c| c.phones[0].number = "not a phone".into()),
            "customer.phones[0].number",
        ),
        (
            bad(|c| c.time_zone = "China/Xiamen".into()),
            "customer.time_zone",
        ),
        (bad(|c| c.name = "名".repeat(201)), "customer.name"),
        (
            bad(|c| c.declared_needs[0].need = 99),
            "customer.declared_needs[0].need",
        ),
        (bad(|c| c.tags[0].kind = 42), "customer.tags[0].kind"),
        (
            bad(|c| c.tags[0].text = String::new()),
            "customer.tags[0].text",
        ),
        (
            bad(|c| {
                if let Some(p) = c.preferences.as_mut() {
                    p.contact_windows[0].end_minute = p.contact_windows[0].start_minute;
                }
            }),
            "customer.preferences.contact_windows[0].end_minute",
        ),
        (
            bad(|c| {
                if let Some(p) = c.preferences.as_mut() {
                    p.preferred_channel = 77;
                }
            }),
            "customer.preferences.preferred_channel",
        ),
    ];
    for (request, field) in cases {
        assert_invalid(client.upsert_customer(request.clone()).await, field);
        assert_invalid(
            client
                .create_customer(pb::CreateCustomerRequest {
                    customer: request.customer,
                })
                .await,
            field,
        );
    }
    assert_code(
        client
            .get_profile(pb::GetProfileRequest {
                customer_id: "C-BAD".into(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone: "13800138000".into(),
            })
            .await,
        Code::NotFound,
    );

    assert_invalid(
        client
            .get_profile(pb::GetProfileRequest {
                customer_id: String::new(),
            })
            .await,
        "customer_id",
    );
    assert_invalid(
        client
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone: "call me".into(),
            })
            .await,
        "phone",
    );

    // Contacts and tags of an existing customer.
    client
        .upsert_customer(upsert(Some(reference("C-OK", "13900139000"))))
        .await
        .expect("upsert");
    let record = |c: Option<pb::ContactRecord>| pb::RecordContactRequest {
        customer_id: "C-OK".into(),
        contact: c,
    };
    let bad_contact = |edit: fn(&mut pb::ContactRecord)| {
        let mut c = contact("call-bad", 10, false);
        edit(&mut c);
        record(Some(c))
    };
    let cases: Vec<(pb::RecordContactRequest, &str)> = vec![
        (record(None), "contact"),
        (bad_contact(|c| c.csat = 7), "contact.csat"),
        (bad_contact(|c| c.channel = 99), "contact.channel"),
        (bad_contact(|c| c.channel = 0), "contact.channel"),
        (bad_contact(|c| c.direction = 3), "contact.direction"),
        (bad_contact(|c| c.outcome = 9), "contact.outcome"),
        (bad_contact(|c| c.started_at = None), "contact.started_at"),
        (
            bad_contact(|c| c.contact_id = String::new()),
            "contact.contact_id",
        ),
        (
            bad_contact(|c| c.notes = "n".repeat(2_001)),
            "contact.notes",
        ),
        (
            pb::RecordContactRequest {
                customer_id: "bad id".into(),
                contact: Some(contact("call-bad", 10, false)),
            },
            "customer_id",
        ),
    ];
    for (request, field) in cases {
        assert_invalid(client.record_contact(request).await, field);
    }

    assert_invalid(
        client
            .add_tags(pb::AddTagsRequest {
                customer_id: "C-OK".into(),
                tags: vec![],
            })
            .await,
        "tags",
    );
    assert_invalid(
        client
            .add_tags(pb::AddTagsRequest {
                customer_id: "C-OK".into(),
                tags: vec![
                    pb::CommunicationTag {
                        kind: TagKind::Interest as i32,
                        text: "golf".into(),
                        ..Default::default()
                    },
                    pb::CommunicationTag {
                        kind: TagKind::Interest as i32,
                        text: "t".repeat(201),
                        ..Default::default()
                    },
                ],
            })
            .await,
        "tags[1].text",
    );
    assert_invalid(
        client
            .add_tags(pb::AddTagsRequest {
                customer_id: "C-OK".into(),
                tags: vec![pb::CommunicationTag {
                    kind: TagKind::Interest as i32,
                    text: "already over".into(),
                    expires_at: Some(now_ts(-60)),
                    ..Default::default()
                }],
            })
            .await,
        "tags[0].expires_at",
    );
    assert_invalid(
        client
            .remove_tag(pb::RemoveTagRequest {
                customer_id: "C-OK".into(),
                tag_id: String::new(),
            })
            .await,
        "tag_id",
    );

    let view = client
        .get_profile(pb::GetProfileRequest {
            customer_id: "C-OK".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let customer = view.customer.expect("customer");
    assert_eq!(customer.version, 1, "no refused request wrote anything");
    assert_eq!(customer.tags.len(), 1);
    assert_eq!(view.summary.expect("summary").total_contacts, 0);

    running.shutdown().await;
}

#[tokio::test]
async fn status_codes_tell_callers_what_happened() {
    let running = Running::start().await;
    let mut client = running.client.clone();

    client
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(reference("C-1", "13800138000")),
        })
        .await
        .expect("create");

    // ALREADY_EXISTS: a taken id, a taken phone (without echoing it).
    let message = assert_code(
        client
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(reference("C-1", "13900139000")),
            })
            .await,
        Code::AlreadyExists,
    );
    assert!(message.starts_with("customer.customer_id:"), "{message}");
    let message = assert_code(
        client
            .upsert_customer(pb::UpsertCustomerRequest {
                customer: Some(reference("C-2", "+86 138 0013 8000")),
            })
            .await,
        Code::AlreadyExists,
    );
    assert!(
        message.starts_with("customer.phones[0].number:"),
        "{message}"
    );
    assert!(
        !message.contains("138"),
        "phone numbers stay out of messages"
    );
    assert_code(
        client
            .get_profile(pb::GetProfileRequest {
                customer_id: "C-2".into(),
            })
            .await,
        Code::NotFound,
    );

    // NOT_FOUND: unknown customer, number, tag.
    assert_code(
        client
            .get_profile(pb::GetProfileRequest {
                customer_id: "C-NOBODY".into(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .lookup_by_phone(pb::LookupByPhoneRequest {
                phone: "13700137000".into(),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .record_contact(pb::RecordContactRequest {
                customer_id: "C-NOBODY".into(),
                contact: Some(contact("call-1", 5, false)),
            })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .add_tags(pb::AddTagsRequest {
                customer_id: "C-NOBODY".into(),
                tags: vec![pb::CommunicationTag {
                    kind: TagKind::Other as i32,
                    text: "x".into(),
                    ..Default::default()
                }],
            })
            .await,
        Code::NotFound,
    );
    let message = assert_code(
        client
            .remove_tag(pb::RemoveTagRequest {
                customer_id: "C-1".into(),
                tag_id: "no-such-tag".into(),
            })
            .await,
        Code::NotFound,
    );
    assert!(message.contains("tag"), "{message}");

    // Every RPC of the contract is implemented: empty requests of those
    // with required fields are refused naming the first missing field.
    let refused = [
        (
            client
                .update_customer(pb::UpdateCustomerRequest::default())
                .await
                .map(|_| ()),
            "customer",
        ),
        (
            client
                .list_contacts(pb::ListContactsRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .add_care_note(pb::AddCareNoteRequest::default())
                .await
                .map(|_| ()),
            "note",
        ),
        (
            client
                .set_preferences(pb::SetPreferencesRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .set_consent(pb::SetConsentRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .record_event(pb::RecordEventRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .record_campaign_exposure(pb::RecordCampaignExposureRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .erase_customer(pb::EraseCustomerRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
        (
            client
                .export_customer(pb::ExportCustomerRequest::default())
                .await
                .map(|_| ()),
            "customer_id",
        ),
    ];
    for (result, field) in refused {
        assert_invalid(result, field);
    }

    running.shutdown().await;
}

#[tokio::test]
async fn crm_rpcs_work_and_refuse_bad_input_naming_the_field() {
    use futures::StreamExt as _;
    let running = Running::start().await;
    let mut client = running.client.clone();
    let created = client
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(reference("C-CRM", "13800138000")),
        })
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.version, 1);

    // Two CRM users saved on top of version 1 at once: one wins, the other
    // is told to reread.
    let update = |city: &str| pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            customer_id: "C-CRM".into(),
            city: city.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["city".into()],
        }),
        expected_version: 1,
    };
    let (mut a, mut b) = (client.clone(), client.clone());
    let (ra, rb) = tokio::join!(
        a.update_customer(update("Quanzhou")),
        b.update_customer(update("Zhangzhou"))
    );
    let codes = [
        ra.as_ref().err().map(|s| s.code()),
        rb.as_ref().err().map(|s| s.code()),
    ];
    assert!(
        codes == [None, Some(Code::Aborted)] || codes == [Some(Code::Aborted), None],
        "{codes:?}"
    );
    let winner = ra.or(rb).expect("one wins").into_inner();
    assert_eq!(winner.version, 2);
    assert_eq!(winner.name, "陈先生", "fields outside the mask are kept");

    // Bad input names the field and writes nothing.
    let mut bad_tz = update("x");
    if let Some(c) = bad_tz.customer.as_mut() {
        c.time_zone = "Mars/Olympus".into();
    }
    bad_tz.update_mask = Some(prost_types::FieldMask {
        paths: vec!["time_zone".into()],
    });
    bad_tz.expected_version = 2;
    assert_invalid(client.update_customer(bad_tz).await, "customer.time_zone");
    let mut unknown_path = update("x");
    unknown_path.update_mask = Some(prost_types::FieldMask {
        paths: vec!["city".into(), "customer_id".into()],
    });
    assert_invalid(
        client.update_customer(unknown_path).await,
        "update_mask.paths[1]",
    );
    assert_invalid(
        client
            .set_preferences(pb::SetPreferencesRequest {
                customer_id: "C-CRM".into(),
                preferences: Some(pb::Preferences {
                    contact_windows: vec![pb::ContactWindow {
                        days: vec![],
                        start_minute: 600,
                        end_minute: 540,
                    }],
                    ..Default::default()
                }),
            })
            .await,
        "preferences.contact_windows[0].end_minute",
    );
    assert_invalid(
        client
            .list_contacts(pb::ListContactsRequest {
                customer_id: "C-CRM".into(),
                page_size: 201,
                page_token: String::new(),
            })
            .await,
        "page_size",
    );
    assert_invalid(
        client
            .search_customers(pb::SearchCustomersRequest {
                tier: 42,
                ..Default::default()
            })
            .await,
        "tier",
    );
    assert_invalid(
        client
            .add_care_note(pb::AddCareNoteRequest {
                note: Some(pb::CareNote {
                    customer_id: "C-CRM".into(),
                    text: "called back".into(),
                    added_tags: vec![pb::CommunicationTag {
                        kind: TagKind::Interest as i32,
                        text: String::new(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            })
            .await,
        "note.added_tags[0].text",
    );
    let view = client
        .get_profile(pb::GetProfileRequest {
            customer_id: "C-CRM".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        view.customer.expect("customer").version,
        2,
        "nothing written"
    );

    // Notes, events, campaigns and contacts, then listing and export.
    let note = client
        .add_care_note(pb::AddCareNoteRequest {
            note: Some(pb::CareNote {
                customer_id: "C-CRM".into(),
                contact_id: "care-1".into(),
                text: "happy with the follow-up".into(),
                topics: vec!["follow-up".into()],
                added_tags: vec![pb::CommunicationTag {
                    kind: TagKind::Interest as i32,
                    text: "tea".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .expect("note")
        .into_inner();
    assert!(!note.note_id.is_empty());
    assert_eq!(note.added_tags.len(), 1);
    client
        .record_event(pb::RecordEventRequest {
            customer_id: "C-CRM".into(),
            event: Some(pb::CustomerEvent {
                kind: "card_lost".into(),
                occurred_at: Some(now_ts(-60)),
                ..Default::default()
            }),
        })
        .await
        .expect("event");
    client
        .record_campaign_exposure(pb::RecordCampaignExposureRequest {
            customer_id: "C-CRM".into(),
            exposure: Some(pb::CampaignExposure {
                campaign_id: "spring".into(),
                title: "Spring offer".into(),
                channel: Channel::Email as i32,
                sent_at: Some(now_ts(-60)),
            }),
        })
        .await
        .expect("campaign");
    for i in 0..5 {
        client
            .record_contact(pb::RecordContactRequest {
                customer_id: "C-CRM".into(),
                contact: Some(contact(&format!("call-{i}"), 10, false)),
            })
            .await
            .expect("contact");
    }
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_contacts(pb::ListContactsRequest {
                customer_id: "C-CRM".into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        listed.extend(page.contacts.into_iter().map(|c| c.contact_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), 5);

    let vip = client
        .search_customers(pb::SearchCustomersRequest {
            tier: pb::ValueTier::Vip as i32,
            need: Need::Recognition as i32,
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(vip.customers.len(), 1);

    for lean in [false, true] {
        let exported: Vec<pb::ProfileView> = client
            .export_profiles(pb::ExportProfilesRequest {
                batch_size: 1,
                lean,
            })
            .await
            .expect("export")
            .into_inner()
            .map(|p| p.expect("profile"))
            .collect()
            .await;
        assert_eq!(exported.len(), 1, "lean {lean}");
        assert_eq!(
            exported[0].summary.as_ref().map(|s| s.total_contacts),
            Some(5),
            "lean {lean}"
        );
    }

    let export = client
        .export_customer(pb::ExportCustomerRequest {
            customer_id: "C-CRM".into(),
        })
        .await
        .expect("export")
        .into_inner();
    assert_eq!(export.contacts.len(), 5);
    assert_eq!(export.care_notes.len(), 1);
    assert_eq!(export.events.len(), 1);
    assert_eq!(export.campaigns.len(), 1);

    let erased = client
        .erase_customer(pb::EraseCustomerRequest {
            customer_id: "C-CRM".into(),
        })
        .await
        .expect("erase")
        .into_inner();
    assert!(erased.rows_removed >= 12, "{erased:?}");
    let gone = client
        .lookup_by_phone(pb::LookupByPhoneRequest {
            phone: "13800138000".into(),
        })
        .await;
    assert_code(gone, Code::NotFound);
    assert_code(
        client
            .export_customer(pb::ExportCustomerRequest {
                customer_id: "C-CRM".into(),
            })
            .await,
        Code::NotFound,
    );
    running.shutdown().await;
}
