//! The profile store contract: one suite of cases, run against SQLite (a
//! temporary file) and a real PostgreSQL (a private cluster, or a fresh
//! database on `TEST_POSTGRES_URL`). Both backends must behave the same.
//!
//! Every case controls `now`, so windows and expiries are exact.

use chrono::{DateTime, Duration, Utc};
use rapport_kit::phone::{self, E164, Region};
use rapport_profile::model::{
    CampaignExposure, Channel, Consent, Contact, ContactOutcome, ContactWindow, Customer,
    CustomerInput, Direction, Need, NeedWeight, NewEvent, NewTag, PhoneInput, Preferences,
    PublicInfluence, TagKind, Weekday,
};
use rapport_profile::store::{PoolOptions, PostgresStore, SqliteStore, Store, StoreError};

/// Generates one `#[tokio::test]` per case and backend, each with a fresh
/// database.
macro_rules! contract_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::sqlite().await;
                    super::cases::$case(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _pg) = super::postgres().await;
                    super::cases::$case(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

contract_suite!(
    upsert_then_get_round_trips_every_field,
    upsert_replaces_and_keeps_tags_unless_given,
    create_refuses_an_existing_id,
    lookup_by_phone_accepts_several_formats,
    phone_of_another_customer_is_refused_and_nothing_is_written,
    tags_are_added_removed_and_expire,
    record_contact_is_idempotent,
    summary_of_the_reference_case,
    summary_windows_and_aggregates,
    summary_of_a_customer_without_history,
    events_and_campaigns_are_idempotent,
    concurrent_writers_all_succeed,
);

async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("profile.db").display());
    let store = SqliteStore::connect(&url, PoolOptions::default())
        .await
        .expect("SQLite store opens");
    (store, dir)
}

async fn postgres() -> (PostgresStore, rapport_testkit::postgres::TestPostgres) {
    let pg = rapport_testkit::postgres::TestPostgres::start().expect("PostgreSQL starts");
    let store = PostgresStore::connect(pg.url(), PoolOptions::default())
        .await
        .expect("PostgreSQL store connects");
    (store, pg)
}

mod cases {
    use super::*;

    /// The instant every case treats as "now".
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-16T09:30:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn e164(input: &str) -> E164 {
        phone::normalize(input, Region::CN).expect("valid phone")
    }

    fn tag(kind: TagKind, text: &str) -> NewTag {
        NewTag {
            kind,
            text: text.into(),
            author: "agent-7".into(),
            expires_at: None,
        }
    }

    /// The reference VIP customer of DESIGN.md §3, every field set.
    fn reference(id: &str, phone: &str) -> CustomerInput {
        CustomerInput {
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
            contribution: 120_000,
            potential_value: 2_500_000,
            segment: "private-banking".into(),
            declared_needs: vec![
                NeedWeight {
                    need: Need::Recognition,
                    weight: 0.8,
                },
                NeedWeight {
                    need: Need::ConcretePlan,
                    weight: 0.5,
                },
            ],
            public_influence: PublicInfluence {
                social_followers: 12_000,
                media_presence: true,
            },
            phones: vec![PhoneInput {
                number: e164(phone),
                label: "mobile".into(),
            }],
            tags: Some(vec![
                tag(TagKind::AddressForm, "陈总"),
                tag(TagKind::HandlingHabit, "wants written confirmation"),
            ]),
            preferences: Preferences {
                preferred_agent_id: "A-minnan-1".into(),
                dedicated_field_manager_id: "FM-7".into(),
                preferred_channel: Some(Channel::Voice),
                contact_windows: vec![ContactWindow {
                    days: vec![Weekday::Monday, Weekday::Friday],
                    start_minute: 9 * 60,
                    end_minute: 12 * 60,
                }],
                language: "zh".into(),
            },
            consent: Consent {
                care_calls: true,
                do_not_call: false,
                do_not_call_source: String::new(),
                do_not_call_at: None,
            },
        }
    }

    fn contact(id: &str, started_at: DateTime<Utc>) -> Contact {
        Contact {
            contact_id: id.into(),
            channel: Channel::Voice,
            direction: Direction::Inbound,
            started_at,
            ivr_selection: "personal_wealth_products".into(),
            queue_wait_s: 12,
            handle_s: 240,
            agent_id: "A-1".into(),
            outcome: Some(ContactOutcome::Resolved),
            complaint: false,
            escalation_threat: false,
            csat: None,
            solutions_offered: 1,
            solutions_rejected: 0,
            compensation_asked: false,
            compensation_granted: false,
            notes: String::new(),
        }
    }

    fn assert_matches(stored: &Customer, input: &CustomerInput) {
        assert_eq!(stored.customer_id, input.customer_id);
        assert_eq!(stored.name, input.name);
        assert_eq!(stored.form_of_address, input.form_of_address);
        assert_eq!(stored.locale, input.locale);
        assert_eq!(stored.language, input.language);
        assert_eq!(stored.dialect, input.dialect);
        assert_eq!(stored.region, input.region);
        assert_eq!(stored.city, input.city);
        assert_eq!(stored.time_zone, input.time_zone);
        assert_eq!(stored.age_band, input.age_band);
        assert_eq!(stored.occupation, input.occupation);
        assert_eq!(stored.assets, input.assets);
        assert_eq!(stored.contribution, input.contribution);
        assert_eq!(stored.potential_value, input.potential_value);
        assert_eq!(stored.segment, input.segment);
        assert_eq!(stored.declared_needs, input.declared_needs);
        assert_eq!(stored.public_influence, input.public_influence);
        let phones: Vec<(&str, &str)> = stored
            .phones
            .iter()
            .map(|p| (p.number.as_str(), p.label.as_str()))
            .collect();
        let expected: Vec<(&str, &str)> = input
            .phones
            .iter()
            .map(|p| (p.number.as_str(), p.label.as_str()))
            .collect();
        assert_eq!(phones, expected);
        assert_eq!(stored.preferences, input.preferences);
        assert_eq!(stored.consent, input.consent);
    }

    fn tag_texts(c: &Customer) -> Vec<&str> {
        c.tags.iter().map(|t| t.text.as_str()).collect()
    }

    pub async fn upsert_then_get_round_trips_every_field<S: Store>(store: &S) {
        let mut input = reference("C-VIP-001", "138 0013 8000");
        input.consent = Consent {
            care_calls: false,
            do_not_call: true,
            do_not_call_source: "customer request".into(),
            do_not_call_at: Some(now() - Duration::days(3)),
        };
        let written = store.upsert_customer(&input, now()).await.expect("upsert");
        assert_matches(&written, &input);
        assert_eq!(written.version, 1);
        assert_eq!(written.created_at, now());
        assert_eq!(written.updated_at, now());
        assert_eq!(
            tag_texts(&written),
            ["陈总", "wants written confirmation"],
            "tags keep their order"
        );
        assert!(written.tags.iter().all(|t| !t.tag_id.is_empty()));
        assert_eq!(written.tags[0].kind, TagKind::AddressForm);
        assert_eq!(written.tags[0].author, "agent-7");
        assert_eq!(written.tags[0].created_at, now());

        let profile = store
            .get_profile("C-VIP-001", now())
            .await
            .expect("get profile");
        assert_eq!(profile.customer, written, "get returns what upsert stored");
        assert_eq!(profile.customer.phones[0].number, "+8613800138000");

        let missing = store.get_profile("C-NOBODY", now()).await;
        assert!(matches!(missing, Err(StoreError::CustomerNotFound)));
    }

    pub async fn upsert_replaces_and_keeps_tags_unless_given<S: Store>(store: &S) {
        let first = store
            .upsert_customer(&reference("C-1", "13800138000"), now())
            .await
            .expect("create by upsert");

        // A CRM sync without tags: every field replaced, tags kept.
        let later = now() + Duration::hours(1);
        let mut changed = reference("C-1", "13900139000");
        changed.name = "陈大文".into();
        changed.dialect = String::new();
        changed.declared_needs = vec![NeedWeight {
            need: Need::JustTalk,
            weight: 1.0,
        }];
        changed.preferences = Preferences::default();
        changed.tags = None;
        let second = store
            .upsert_customer(&changed, later)
            .await
            .expect("replace");
        assert_matches(&second, &changed);
        assert_eq!(second.version, first.version + 1);
        assert_eq!(second.created_at, first.created_at);
        assert_eq!(second.updated_at, later);
        assert_eq!(second.tags, first.tags, "tags not given are kept");

        // The old number was released, the new one resolves.
        let old = store.lookup_by_phone(&e164("13800138000"), later).await;
        assert!(matches!(old, Err(StoreError::CustomerNotFound)));
        let new = store
            .lookup_by_phone(&e164("13900139000"), later)
            .await
            .expect("new phone");
        assert_eq!(new.customer.customer_id, "C-1");

        // Tags given: they replace the stored ones.
        changed.tags = Some(vec![tag(TagKind::Interest, "golf")]);
        let third = store
            .upsert_customer(&changed, later)
            .await
            .expect("replace tags");
        assert_eq!(third.version, 3);
        assert_eq!(tag_texts(&third), ["golf"]);
    }

    pub async fn create_refuses_an_existing_id<S: Store>(store: &S) {
        let input = reference("C-2", "13800138000");
        let created = store.create_customer(&input, now()).await.expect("create");
        assert_eq!(created.version, 1);

        let mut again = reference("C-2", "13900139000");
        again.name = "someone else".into();
        let refused = store.create_customer(&again, now()).await;
        assert!(
            matches!(refused, Err(StoreError::CustomerExists)),
            "{refused:?}"
        );

        let stored = store.get_profile("C-2", now()).await.expect("still there");
        assert_eq!(
            stored.customer, created,
            "the refused create changed nothing"
        );
        let phone = store.lookup_by_phone(&e164("13900139000"), now()).await;
        assert!(matches!(phone, Err(StoreError::CustomerNotFound)));
    }

    pub async fn lookup_by_phone_accepts_several_formats<S: Store>(store: &S) {
        let mut input = reference("C-3", "138 0013 8000");
        input.phones.push(PhoneInput {
            number: e164("0592-1234567"),
            label: "office".into(),
        });
        store.upsert_customer(&input, now()).await.expect("upsert");

        for format in [
            "13800138000",
            "138-0013-8000",
            "+86 138 0013 8000",
            "+8613800138000",
            "008613800138000",
            "(0592) 123 4567",
            "+86 592 1234567",
        ] {
            let profile = store
                .lookup_by_phone(&e164(format), now())
                .await
                .unwrap_or_else(|e| panic!("lookup of {format:?} failed: {e}"));
            assert_eq!(profile.customer.customer_id, "C-3", "{format}");
        }
        let unknown = store.lookup_by_phone(&e164("13700137000"), now()).await;
        assert!(matches!(unknown, Err(StoreError::CustomerNotFound)));
    }

    pub async fn phone_of_another_customer_is_refused_and_nothing_is_written<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-A", "13800138000"), now())
            .await
            .expect("owner");
        let c = store
            .upsert_customer(&reference("C-C", "13600136000"), now())
            .await
            .expect("bystander");

        // A new customer claiming A's number second: nothing of it remains.
        let mut b = reference("C-B", "13900139000");
        b.phones.push(PhoneInput {
            number: e164("+86 138 0013 8000"),
            label: "stolen".into(),
        });
        let refused = store.upsert_customer(&b, now()).await;
        assert!(
            matches!(refused, Err(StoreError::PhoneTaken { index: 1 })),
            "{refused:?}"
        );
        assert!(matches!(
            store.get_profile("C-B", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        assert!(matches!(
            store.lookup_by_phone(&e164("13900139000"), now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        let refused = store.create_customer(&b, now()).await;
        assert!(matches!(refused, Err(StoreError::PhoneTaken { index: 1 })));
        assert!(matches!(
            store.get_profile("C-B", now()).await,
            Err(StoreError::CustomerNotFound)
        ));

        // An existing customer claiming it: its record is left as it was.
        let mut c_changed = reference("C-C", "13800138000");
        c_changed.name = "renamed".into();
        c_changed.tags = Some(vec![tag(TagKind::Other, "replaced")]);
        let refused = store
            .upsert_customer(&c_changed, now() + Duration::minutes(1))
            .await;
        assert!(matches!(refused, Err(StoreError::PhoneTaken { index: 0 })));
        let after = store.get_profile("C-C", now()).await.expect("bystander");
        assert_eq!(after.customer, c, "a refused upsert changed nothing");

        let owner = store
            .lookup_by_phone(&e164("13800138000"), now())
            .await
            .expect("owner keeps the number");
        assert_eq!(owner.customer.customer_id, "C-A");
    }

    pub async fn tags_are_added_removed_and_expire<S: Store>(store: &S) {
        let mut input = reference("C-T", "13800138000");
        input.tags = None;
        let created = store.upsert_customer(&input, now()).await.expect("upsert");
        assert!(created.tags.is_empty());

        let expiring = NewTag {
            expires_at: Some(now() + Duration::hours(1)),
            ..tag(TagKind::Caution, "flight cancelled yesterday")
        };
        let added = store
            .add_tags(
                "C-T",
                &[tag(TagKind::CallPattern, "calls Monday mornings"), expiring],
                now(),
            )
            .await
            .expect("add tags");
        assert_eq!(added.len(), 2);
        assert_ne!(added[0].tag_id, added[1].tag_id);
        assert_eq!(added[1].expires_at, Some(now() + Duration::hours(1)));

        let profile = store.get_profile("C-T", now()).await.expect("get");
        assert_eq!(profile.customer.tags, added);
        assert_eq!(profile.customer.version, created.version + 1);

        let later = store
            .get_profile("C-T", now() + Duration::hours(2))
            .await
            .expect("get later");
        assert_eq!(
            tag_texts(&later.customer),
            ["calls Monday mornings"],
            "the expired tag is no longer returned"
        );

        store
            .remove_tag("C-T", &added[0].tag_id, now())
            .await
            .expect("remove");
        let after = store.get_profile("C-T", now()).await.expect("get");
        assert_eq!(tag_texts(&after.customer), ["flight cancelled yesterday"]);
        assert_eq!(after.customer.version, created.version + 2);

        let again = store.remove_tag("C-T", &added[0].tag_id, now()).await;
        assert!(matches!(again, Err(StoreError::TagNotFound)), "{again:?}");
        let unchanged = store.get_profile("C-T", now()).await.expect("get");
        assert_eq!(
            unchanged.customer.version, after.customer.version,
            "a failed removal does not bump the version"
        );

        // Another customer's tag is not this customer's to remove.
        store
            .upsert_customer(&reference("C-U", "13900139000"), now())
            .await
            .expect("other customer");
        let foreign = store.remove_tag("C-U", &added[1].tag_id, now()).await;
        assert!(matches!(foreign, Err(StoreError::TagNotFound)));

        let nobody = store
            .add_tags("C-NOBODY", &[tag(TagKind::Other, "x")], now())
            .await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
        let nobody = store.remove_tag("C-NOBODY", &added[1].tag_id, now()).await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
    }

    pub async fn record_contact_is_idempotent<S: Store>(store: &S) {
        let created = store
            .upsert_customer(&reference("C-R", "13800138000"), now())
            .await
            .expect("upsert");
        let first = Contact {
            csat: Some(5),
            notes: "asked about the wealth product launch".into(),
            ..contact("call-1", now() - Duration::hours(2))
        };
        assert!(
            store
                .record_contact("C-R", &first, now())
                .await
                .expect("record")
        );

        let mut repeat = contact("call-1", now() - Duration::hours(1));
        repeat.complaint = true;
        assert!(
            !store
                .record_contact("C-R", &repeat, now())
                .await
                .expect("repeat"),
            "a repeat reports created=false"
        );

        let profile = store.get_profile("C-R", now()).await.expect("get");
        assert_eq!(profile.summary.total_contacts, 1);
        assert_eq!(profile.summary.complaints_90d, 0, "the first record wins");
        assert_eq!(profile.summary.recent_contacts, vec![first.clone()]);
        assert_eq!(
            profile.customer.version, created.version,
            "history does not bump the record's version"
        );

        // Contact ids are scoped to the customer.
        store
            .upsert_customer(&reference("C-S", "13900139000"), now())
            .await
            .expect("other");
        assert!(
            store
                .record_contact("C-S", &first, now())
                .await
                .expect("same id, other customer")
        );

        let nobody = store.record_contact("C-NOBODY", &first, now()).await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
    }

    /// DESIGN.md §3: 20 earlier contacts, three of them complaints after
    /// transfer waits of 34, 38 and 45 seconds.
    pub async fn summary_of_the_reference_case<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-VIP", "13800138000"), now())
            .await
            .expect("upsert");
        let complaint_waits = [(3, 34), (9, 38), (15, 45)];
        for i in 0..20u32 {
            let started = now() - Duration::days(i64::from(i) * 4 + 1);
            let mut c = contact(&format!("call-{i:02}"), started);
            c.queue_wait_s = 5 + i;
            if let Some((_, wait)) = complaint_waits.iter().find(|(at, _)| *at == i) {
                c.queue_wait_s = *wait;
                c.complaint = true;
                c.outcome = Some(ContactOutcome::Unresolved);
            }
            assert!(
                store
                    .record_contact("C-VIP", &c, now())
                    .await
                    .expect("record")
            );
        }

        let summary = store
            .get_profile("C-VIP", now())
            .await
            .expect("get")
            .summary;
        assert_eq!(summary.total_contacts, 20);
        let waits: Vec<(u32, bool, bool)> = summary
            .waits_before_complaints
            .iter()
            .map(|w| (w.wait_s, w.complaint, w.abandoned))
            .collect();
        assert_eq!(
            waits,
            [(34, true, false), (38, true, false), (45, true, false)],
            "exactly the three complaint waits, newest first"
        );
        assert_eq!(
            summary.waits_before_complaints[0].at,
            now() - Duration::days(13)
        );
        assert_eq!(summary.complaints_90d, 3);
        assert_eq!(summary.contacts_7d, 2); // days 1 and 5
        assert_eq!(summary.contacts_30d, 8); // days 1, 5, ..., 29
        assert_eq!(summary.contacts_90d, 20); // days 1..=77
        assert_eq!(summary.last_contact_at, Some(now() - Duration::days(1)));
        assert_eq!(summary.recent_contacts.len(), 5);
        assert_eq!(summary.recent_contacts[0].contact_id, "call-00");
        assert_eq!(summary.recent_contacts[4].contact_id, "call-04");
        assert_eq!(summary.affinity_agent_ids, Vec::<String>::new());
    }

    pub async fn summary_windows_and_aggregates<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-W", "13800138000"), now())
            .await
            .expect("upsert");
        let day = |d: i64| now() - Duration::days(d);
        let contacts = [
            // Inside 7 days.
            Contact {
                agent_id: "A-best".into(),
                csat: Some(5),
                handle_s: 100,
                ..contact("c-01", day(1))
            },
            Contact {
                outcome: Some(ContactOutcome::Abandoned),
                queue_wait_s: 95,
                handle_s: 0,
                agent_id: String::new(),
                ..contact("c-02", day(2))
            },
            // Inside 30 days.
            Contact {
                agent_id: "A-good".into(),
                csat: Some(4),
                handle_s: 201,
                escalation_threat: true,
                solutions_offered: 3,
                solutions_rejected: 3,
                compensation_asked: true,
                ..contact("c-10", day(10))
            },
            Contact {
                agent_id: "A-best".into(),
                csat: Some(4),
                handle_s: 300,
                ..contact("c-12", day(12))
            },
            Contact {
                // Rated well but not resolved: no affinity.
                agent_id: "A-unresolved".into(),
                csat: Some(5),
                outcome: Some(ContactOutcome::Escalated),
                complaint: true,
                queue_wait_s: 0,
                ..contact("c-20", day(20))
            },
            // Inside 90 days.
            Contact {
                // Resolved but rated 3: no affinity.
                agent_id: "A-meh".into(),
                csat: Some(3),
                solutions_rejected: 2,
                ..contact("c-40", day(40))
            },
            Contact {
                complaint: true,
                queue_wait_s: 61,
                outcome: Some(ContactOutcome::Unresolved),
                ..contact("c-60", day(60))
            },
            // Older than 90 days: only in totals, affinity and evidence.
            Contact {
                agent_id: "A-old".into(),
                csat: Some(5),
                complaint: true,
                queue_wait_s: 20,
                handle_s: 9_999,
                ..contact("c-95", day(95))
            },
        ];
        for c in &contacts {
            assert!(store.record_contact("C-W", c, now()).await.expect("record"));
        }

        let events = [
            NewEvent {
                event_id: Some("ev-card".into()),
                kind: "card_lost".into(),
                detail: "debit card".into(),
                occurred_at: day(5),
            },
            NewEvent {
                event_id: None,
                kind: "flight_cancelled".into(),
                detail: String::new(),
                occurred_at: day(29),
            },
            NewEvent {
                event_id: Some("ev-old".into()),
                kind: "product_failure".into(),
                detail: String::new(),
                occurred_at: day(31),
            },
        ];
        for e in &events {
            store.record_event("C-W", e, now()).await.expect("event");
        }
        let campaigns = [
            CampaignExposure {
                campaign_id: "spring-wealth".into(),
                title: "Spring wealth products".into(),
                channel: Channel::Email,
                sent_at: day(3),
            },
            CampaignExposure {
                campaign_id: "winter".into(),
                title: "Winter".into(),
                channel: Channel::Social,
                sent_at: day(45),
            },
        ];
        for c in &campaigns {
            store
                .record_campaign_exposure("C-W", c, now())
                .await
                .expect("campaign");
        }

        let s = store.get_profile("C-W", now()).await.expect("get").summary;
        assert_eq!(s.contacts_7d, 2);
        assert_eq!(s.contacts_30d, 5);
        assert_eq!(s.contacts_90d, 7);
        assert_eq!(s.total_contacts, 8);
        assert_eq!(s.complaints_90d, 2);
        assert_eq!(s.escalation_threats_90d, 1);
        assert_eq!(s.abandoned_90d, 1);
        assert_eq!(s.solutions_rejected_90d, 5);
        assert_eq!(s.compensation_asked_90d, 1);
        // Handled 90-day contacts: 100, 201, 300, 240, 240, 240 → 1321 / 6
        // = 220.17; the abandoned one (0 s) does not count.
        assert_eq!(s.mean_handle_s_90d, 220);
        let waits: Vec<(u32, bool, bool)> = s
            .waits_before_complaints
            .iter()
            .map(|w| (w.wait_s, w.complaint, w.abandoned))
            .collect();
        assert_eq!(
            waits,
            [(95, false, true), (61, true, false), (20, true, false)],
            "hang-ups and complaints with a wait, newest first; c-20 had no wait"
        );
        assert_eq!(s.last_contact_at, Some(day(1)));
        let recent: Vec<&str> = s
            .recent_contacts
            .iter()
            .map(|c| c.contact_id.as_str())
            .collect();
        assert_eq!(recent, ["c-01", "c-02", "c-10", "c-12", "c-20"]);
        assert_eq!(s.recent_contacts[1], contacts[1], "contacts round-trip");

        let kinds: Vec<&str> = s.recent_events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["card_lost", "flight_cancelled"]);
        assert_eq!(s.recent_events[0].event_id, "ev-card");
        assert_eq!(s.recent_events[0].detail, "debit card");
        assert!(!s.recent_events[1].event_id.is_empty(), "id assigned");
        assert_eq!(s.recent_campaigns, vec![campaigns[0].clone()]);

        assert_eq!(
            s.affinity_agent_ids,
            ["A-best", "A-good", "A-old"],
            "resolved and rated 4+, most frequent first, then most recent"
        );
    }

    pub async fn summary_of_a_customer_without_history<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-NEW", "13800138000"), now())
            .await
            .expect("upsert");
        let profile = store.get_profile("C-NEW", now()).await.expect("get");
        assert_eq!(profile.summary, Default::default());
    }

    pub async fn events_and_campaigns_are_idempotent<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-E", "13800138000"), now())
            .await
            .expect("upsert");
        let event = NewEvent {
            event_id: Some("ev-1".into()),
            kind: "card_lost".into(),
            detail: "first".into(),
            occurred_at: now() - Duration::hours(3),
        };
        let first = store
            .record_event("C-E", &event, now())
            .await
            .expect("event");
        let repeat = NewEvent {
            detail: "second".into(),
            ..event.clone()
        };
        let second = store
            .record_event("C-E", &repeat, now())
            .await
            .expect("repeat");
        assert_eq!(first, second, "the first recording wins");
        assert_eq!(second.detail, "first");

        let exposure = CampaignExposure {
            campaign_id: "launch".into(),
            title: "Launch".into(),
            channel: Channel::Email,
            sent_at: now() - Duration::hours(1),
        };
        for _ in 0..2 {
            store
                .record_campaign_exposure("C-E", &exposure, now())
                .await
                .expect("campaign");
        }
        let s = store.get_profile("C-E", now()).await.expect("get").summary;
        assert_eq!(s.recent_events.len(), 1);
        assert_eq!(s.recent_campaigns.len(), 1);

        let nobody = store.record_event("C-NOBODY", &event, now()).await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
        let nobody = store
            .record_campaign_exposure("C-NOBODY", &exposure, now())
            .await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
    }

    /// Many writers at once (contacts and tags of one customer, upserts of
    /// others) all succeed: SQLite writers queue on the write lock,
    /// PostgreSQL writers on the customer row.
    pub async fn concurrent_writers_all_succeed<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-BUSY", "13800138000"), now())
            .await
            .expect("upsert");
        let contacts = (0..24).map(|i| async move {
            let c = contact(&format!("call-{i}"), now() - Duration::minutes(i));
            store.record_contact("C-BUSY", &c, now()).await
        });
        let tags = (0..8).map(|i| async move {
            store
                .add_tags(
                    "C-BUSY",
                    &[tag(TagKind::Other, &format!("note {i}"))],
                    now(),
                )
                .await
                .map(|_| true)
        });
        let upserts = (0..8).map(|i| async move {
            let mut input = reference(&format!("C-OTHER-{i}"), "13800138000");
            input.phones.clear();
            store.upsert_customer(&input, now()).await.map(|_| true)
        });
        let (contacts, tags, upserts) = tokio::join!(
            futures::future::join_all(contacts),
            futures::future::join_all(tags),
            futures::future::join_all(upserts),
        );
        for result in contacts.into_iter().chain(tags).chain(upserts) {
            assert!(result.expect("concurrent write succeeds"));
        }
        let profile = store.get_profile("C-BUSY", now()).await.expect("get");
        assert_eq!(profile.summary.total_contacts, 24);
        assert_eq!(profile.customer.tags.len(), 10);
        assert_eq!(profile.customer.version, 9);
    }
}
