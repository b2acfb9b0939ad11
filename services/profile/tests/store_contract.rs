//! The profile store contract: one suite of cases, run against SQLite (a
//! temporary file) and a real PostgreSQL (a private cluster, or a fresh
//! database on `TEST_POSTGRES_URL`). Both backends must behave the same.
//!
//! Every case controls `now`, so windows and expiries are exact.

use chrono::{DateTime, Duration, Utc};
use rapport_kit::phone::{self, E164, Region};
use rapport_profile::model::{
    CampaignExposure, ChangeKind, Channel, Consent, Contact, ContactCursor, ContactOutcome,
    ContactWindow, Customer, CustomerField, CustomerInput, CustomerPatch, Direction,
    ImportCustomer, Need, NeedWeight, NewCareNote, NewEvent, NewTag, PhoneInput, Preferences,
    PublicInfluence, SearchFilter, TagKind, ValueTier, Weekday,
};
use rapport_profile::store::{
    PoolOptions, PostgresStore, SqliteStore, Store, StoreError, SummaryParts,
};

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
    concurrent_contacts_commit_together_and_fail_alone,
    summary_of_the_reference_case,
    summary_windows_and_aggregates,
    summary_of_a_customer_without_history,
    events_and_campaigns_are_idempotent,
    concurrent_writers_all_succeed,
    update_patches_only_the_masked_fields,
    concurrent_updates_with_one_expected_version_let_exactly_one_win,
    contacts_are_listed_newest_first_with_stable_cursors,
    export_ranges_from_page_ends_miss_no_one_inserted_meanwhile,
    care_notes_add_their_tags_once,
    preferences_and_consent_are_replaced_and_bump_the_version,
    search_by_segment_need_tag_kind_and_tier_pages_by_id,
    export_profiles_pages_through_everyone,
    the_change_feed_records_every_kind_in_commit_order,
    erase_removes_every_row_and_export_returns_everything,
    import_batches_write_whole_customers_and_replay_idempotently,
    totals_are_maintained_without_counting_the_history,
    summary_has_outbound_and_complaint_facts,
    export_batches_match_single_reads,
    the_change_feed_is_pruned_past_its_retention,
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

/// SQLite's group commit writes many contacts in one transaction; a
/// contact that fails after its first write (here: a trigger refuses its
/// change-feed row, after its contact row and the customer's counters were
/// written) must be rolled back alone, to its savepoint, while the others
/// still commit.
#[tokio::test]
async fn sqlite_a_contact_failing_after_its_first_write_is_rolled_back_alone() {
    let (store, dir) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("profile.db").display());
    let raw = sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection");
    for i in 0..4 {
        store
            .upsert_customer(
                &cases::reference(&format!("P-{i}"), &format!("1390013900{i}")),
                cases::now(),
            )
            .await
            .expect("upsert");
    }
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON changes \
         WHEN NEW.ref_id = 'p-poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    )
    .execute(&raw)
    .await
    .expect("trigger");
    let calls = (0..100).map(|n| {
        let store = &store;
        async move {
            let id = if n == 40 {
                "p-poison".to_owned()
            } else {
                format!("p-{n}")
            };
            let c = cases::contact(&id, cases::now() - Duration::minutes(n));
            (
                n,
                store
                    .record_contact(&format!("P-{}", n % 4), &c, cases::now())
                    .await,
            )
        }
    });
    for (n, r) in futures::future::join_all(calls).await {
        if n == 40 {
            assert!(r.is_err(), "the poisoned contact was recorded: {r:?}");
        } else {
            assert!(matches!(r, Ok(true)), "call {n}: {r:?}");
        }
    }
    let mut total = 0;
    let mut rows = 0;
    for i in 0..4 {
        let p = store
            .get_profile(&format!("P-{i}"), cases::now())
            .await
            .expect("get");
        total += p.summary.total_contacts;
        rows += p.summary.recent_contacts.len();
    }
    // Neither the poisoned contact's row nor its counter survived.
    assert_eq!(total, 99);
    let (poisoned,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM contacts WHERE contact_id = 'p-poison'")
            .fetch_one(&raw)
            .await
            .expect("count");
    assert_eq!(poisoned, 0);
    assert!(rows > 0);
    raw.close().await;
    store.close().await;
}

/// A PostgreSQL connection the server closed while it sat idle in the pool
/// (a server restart, a proxy's idle timeout; here pg_terminate_backend)
/// is found out and replaced before a read uses it: the read answers
/// instead of failing on a dead socket. The pool pings only connections
/// idle for a second or more, so the test waits past that.
#[tokio::test]
async fn postgres_a_connection_closed_while_idle_is_replaced_before_a_read() {
    let (store, pg) = postgres().await;
    store
        .upsert_customer(&cases::reference("P-idle", "13900139009"), cases::now())
        .await
        .expect("upsert");
    store
        .get_profile("P-idle", cases::now())
        .await
        .expect("first read");
    let admin = sqlx::PgPool::connect(pg.url()).await.expect("admin pool");
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&admin)
    .await
    .expect("terminate the store's connections");
    admin.close().await;
    assert!(killed >= 1, "the store held an idle connection to close");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let profile = store
        .get_profile("P-idle", cases::now())
        .await
        .expect("a read after the server closed the pool's idle connections");
    assert_eq!(profile.customer.customer_id, "P-idle");
    store.close().await;
}

mod cases {
    use super::*;

    /// The instant every case treats as "now".
    pub fn now() -> DateTime<Utc> {
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
    pub fn reference(id: &str, phone: &str) -> CustomerInput {
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

    pub fn contact(id: &str, started_at: DateTime<Utc>) -> Contact {
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

    /// Many contacts recorded at once (SQLite commits them in groups, one
    /// savepoint each): the one for an unknown customer fails alone with
    /// NOT_FOUND and writes nothing, a repeat is reported as such, and
    /// every other contact is written and counted exactly once.
    pub async fn concurrent_contacts_commit_together_and_fail_alone<S: Store>(store: &S) {
        for i in 0..4 {
            store
                .upsert_customer(
                    &reference(&format!("G-{i}"), &format!("1380013800{i}")),
                    now(),
                )
                .await
                .expect("upsert");
        }
        let calls = (0..200).map(|n| {
            let customer = if n == 77 {
                "G-unknown".to_owned()
            } else {
                format!("G-{}", n % 4)
            };
            // Call 150 repeats call 50 (same customer, same id).
            let id = if n == 150 { 50 } else { n };
            let c = contact(&format!("g-{id}"), now() - Duration::minutes(i64::from(n)));
            async move { (n, store.record_contact(&customer, &c, now()).await) }
        });
        let results = futures::future::join_all(calls).await;
        let mut created = 0;
        for (n, r) in results {
            match (n, r) {
                (77, r) => assert!(matches!(r, Err(StoreError::CustomerNotFound)), "{r:?}"),
                (50 | 150, Ok(c)) => created += usize::from(c),
                (_, Ok(c)) => {
                    assert!(c, "call {n} is new");
                    created += 1;
                }
                (_, Err(e)) => panic!("call {n}: {e:?}"),
            }
        }
        // 200 calls, one refused, one a repeat of another.
        assert_eq!(created, 198);
        let mut total = 0;
        for i in 0..4 {
            let p = store
                .get_profile(&format!("G-{i}"), now())
                .await
                .expect("get");
            total += p.summary.total_contacts;
        }
        assert_eq!(total, 198);
        assert!(matches!(
            store.get_profile("G-unknown", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
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

    fn patch(fields: &[CustomerField], values: CustomerInput) -> CustomerPatch {
        CustomerPatch {
            fields: fields.to_vec(),
            values,
        }
    }

    pub async fn update_patches_only_the_masked_fields<S: Store>(store: &S) {
        let stored = store
            .upsert_customer(&reference("C-U", "13800138000"), now())
            .await
            .expect("upsert");
        assert_eq!(stored.version, 1);
        let mut values = reference("C-U", "13900139000");
        values.name = "陈志明".into();
        values.city = "Fuzhou".into();
        values.preferences.language = "en".into();
        values.assets = 0;
        let later = now() + Duration::minutes(1);
        let updated = store
            .update_customer(
                "C-U",
                1,
                &patch(
                    &[
                        CustomerField::Name,
                        CustomerField::PreferredLanguage,
                        CustomerField::Phones,
                    ],
                    values,
                ),
                later,
            )
            .await
            .expect("update");
        assert_eq!(updated.version, 2, "one bump per update");
        assert_eq!(updated.name, "陈志明");
        assert_eq!(updated.city, "Xiamen", "not in the mask");
        assert_eq!(updated.assets, 8_000_000, "not in the mask");
        assert_eq!(updated.preferences.language, "en");
        assert_eq!(updated.preferences.dedicated_field_manager_id, "FM-7");
        assert_eq!(updated.phones[0].number, "+8613900139000");
        assert_eq!(updated.tags.len(), 2, "tags kept unless masked");
        assert_eq!(updated.updated_at, later);
        let old_phone = store.lookup_by_phone(&e164("13800138000"), now()).await;
        assert!(matches!(old_phone, Err(StoreError::CustomerNotFound)));

        // A stale version is refused and nothing changes.
        let stale = store
            .update_customer(
                "C-U",
                1,
                &patch(&[CustomerField::City], reference("C-U", "13800138000")),
                later,
            )
            .await;
        assert!(matches!(
            stale,
            Err(StoreError::StaleVersion { current: 2 })
        ));
        let nobody = store
            .update_customer(
                "C-NOBODY",
                1,
                &patch(&[CustomerField::City], reference("C-NOBODY", "13800138000")),
                later,
            )
            .await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));

        // Masking tags with an empty list removes them; a phone of another
        // customer is refused and the version stays.
        let mut cleared = reference("C-U", "13800138000");
        cleared.tags = None;
        let updated = store
            .update_customer("C-U", 2, &patch(&[CustomerField::Tags], cleared), later)
            .await
            .expect("clear tags");
        assert!(updated.tags.is_empty());
        assert_eq!(updated.version, 3);
        store
            .upsert_customer(&reference("C-U2", "13700137000"), now())
            .await
            .expect("other");
        let taken = store
            .update_customer(
                "C-U",
                3,
                &patch(&[CustomerField::Phones], reference("C-U", "13700137000")),
                later,
            )
            .await;
        assert!(matches!(taken, Err(StoreError::PhoneTaken { index: 0 })));
        let after = store.get_profile("C-U", now()).await.expect("get").customer;
        assert_eq!(after.version, 3);
        assert_eq!(after.phones[0].number, "+8613900139000");
    }

    /// Two CRM users read version 1 and save at once: exactly one wins,
    /// the other learns the current version.
    pub async fn concurrent_updates_with_one_expected_version_let_exactly_one_win<S: Store>(
        store: &S,
    ) {
        store
            .upsert_customer(&reference("C-RACE", "13800138000"), now())
            .await
            .expect("upsert");
        for round in 0..5_i64 {
            let version = 1 + round;
            let write = |city: &'static str| {
                let mut values = reference("C-RACE", "13800138000");
                values.city = city.into();
                async move {
                    store
                        .update_customer(
                            "C-RACE",
                            version,
                            &patch(&[CustomerField::City], values),
                            now(),
                        )
                        .await
                }
            };
            let (a, b) = tokio::join!(write("Quanzhou"), write("Zhangzhou"));
            let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "round {round}: {a:?} / {b:?}");
            let loser = if a.is_ok() { b } else { a };
            assert!(
                matches!(loser, Err(StoreError::StaleVersion { current }) if current == version + 1),
                "{loser:?}"
            );
        }
        let c = store
            .get_profile("C-RACE", now())
            .await
            .expect("get")
            .customer;
        assert_eq!(c.version, 6);
    }

    pub async fn contacts_are_listed_newest_first_with_stable_cursors<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-L", "13800138000"), now())
            .await
            .expect("upsert");
        // Two share a start time: the id breaks the tie.
        for i in 0..7_i64 {
            let at = now() - Duration::hours(i.min(5));
            store
                .record_contact("C-L", &contact(&format!("call-{i}"), at), now())
                .await
                .expect("record");
        }
        let mut seen = Vec::new();
        let mut cursor: Option<ContactCursor> = None;
        loop {
            let page = store
                .list_contacts("C-L", cursor.as_ref(), 3)
                .await
                .expect("page");
            seen.extend(page.iter().map(|c| c.contact_id.clone()));
            match page.last() {
                Some(last) if page.len() == 3 => {
                    cursor = Some(ContactCursor {
                        started_at: last.started_at,
                        contact_id: last.contact_id.clone(),
                    });
                }
                _ => break,
            }
            // A contact recorded mid-listing is newer: it never shifts the
            // pages that follow.
            store
                .record_contact(
                    "C-L",
                    &contact(&format!("new-{}", seen.len()), now()),
                    now(),
                )
                .await
                .expect("record");
        }
        assert_eq!(
            seen,
            [
                "call-0", "call-1", "call-2", "call-3", "call-4", "call-6", "call-5"
            ]
        );
        let nobody = store.list_contacts("C-NOBODY", None, 3).await;
        assert!(matches!(nobody, Err(StoreError::CustomerNotFound)));
    }

    pub async fn care_notes_add_their_tags_once<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-N", "13800138000"), now())
            .await
            .expect("upsert");
        let note = NewCareNote {
            customer_id: "C-N".into(),
            note_id: Some("note-1".into()),
            contact_id: "care-1".into(),
            author: "A-1".into(),
            text: "Talked about the new product; happy with the follow-up.".into(),
            topics: vec!["product".into(), "follow-up".into()],
            added_tags: vec![tag(TagKind::Interest, "golf")],
        };
        let stored = store.add_care_note(&note, now()).await.expect("note");
        assert_eq!(stored.note_id, "note-1");
        assert_eq!(stored.topics, ["product", "follow-up"]);
        assert_eq!(stored.added_tags.len(), 1);
        assert_eq!(stored.added_tags[0].text, "golf");
        let again = store.add_care_note(&note, now()).await.expect("repeat");
        assert_eq!(again, stored, "idempotent on the note id");
        let c = store.get_profile("C-N", now()).await.expect("get").customer;
        assert_eq!(c.tags.len(), 3, "the tag was added once");
        assert_eq!(c.version, 2);

        let plain = NewCareNote {
            note_id: None,
            added_tags: Vec::new(),
            ..note.clone()
        };
        let second = store.add_care_note(&plain, now()).await.expect("note");
        assert_ne!(second.note_id, "note-1");
        let c = store.get_profile("C-N", now()).await.expect("get").customer;
        assert_eq!(c.version, 2, "a note without tags leaves the record");
        let nobody = NewCareNote {
            customer_id: "C-NOBODY".into(),
            ..note
        };
        assert!(matches!(
            store.add_care_note(&nobody, now()).await,
            Err(StoreError::CustomerNotFound)
        ));
    }

    pub async fn preferences_and_consent_are_replaced_and_bump_the_version<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-P", "13800138000"), now())
            .await
            .expect("upsert");
        let prefs = Preferences {
            preferred_agent_id: "A-9".into(),
            dedicated_field_manager_id: String::new(),
            preferred_channel: Some(Channel::Chat),
            contact_windows: vec![ContactWindow {
                days: vec![Weekday::Saturday],
                start_minute: 600,
                end_minute: 660,
            }],
            language: "en".into(),
        };
        let c = store
            .set_preferences("C-P", &prefs, now())
            .await
            .expect("prefs");
        assert_eq!(c.preferences, prefs);
        assert_eq!(c.version, 2);
        let consent = Consent {
            care_calls: false,
            do_not_call: true,
            do_not_call_source: "customer request".into(),
            do_not_call_at: Some(now()),
        };
        let c = store
            .set_consent("C-P", &consent, now())
            .await
            .expect("consent");
        assert_eq!(c.consent, consent);
        assert_eq!(c.version, 3);
        assert_eq!(c.preferences, prefs, "consent leaves preferences alone");
        assert!(matches!(
            store.set_consent("C-NOBODY", &consent, now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        assert!(matches!(
            store.set_preferences("C-NOBODY", &prefs, now()).await,
            Err(StoreError::CustomerNotFound)
        ));
    }

    pub async fn search_by_segment_need_tag_kind_and_tier_pages_by_id<S: Store>(store: &S) {
        // (id, segment, assets, need, caution tag)
        let people = [
            ("S-01", "retail", 0, Need::Soothing, true),
            (
                "S-02",
                "private-banking",
                8_000_000,
                Need::Recognition,
                false,
            ),
            ("S-03", "retail", 600_000, Need::Soothing, false),
            ("S-04", "retail", 5_000_000, Need::Compensation, true),
            ("S-05", "private-banking", 9_000_000, Need::Soothing, true),
        ];
        for (i, (id, segment, assets, need, caution)) in people.iter().enumerate() {
            let mut c = reference(id, &format!("1380013800{i}"));
            c.segment = (*segment).into();
            c.assets = *assets;
            c.contribution = 0;
            c.potential_value = 0;
            c.declared_needs = vec![NeedWeight {
                need: *need,
                weight: 0.5,
            }];
            c.tags = Some(if *caution {
                vec![tag(TagKind::Caution, "threatens media")]
            } else {
                vec![tag(TagKind::Interest, "golf")]
            });
            store.upsert_customer(&c, now()).await.expect("upsert");
        }
        let ids = |filter: SearchFilter| async move {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .search_customers(&filter, after.as_deref(), 2, now())
                    .await
                    .expect("search");
                all.extend(page.iter().map(|c| c.customer_id.clone()));
                if page.len() < 2 {
                    return all;
                }
                after = page.last().map(|c| c.customer_id.clone());
            }
        };
        assert_eq!(ids(SearchFilter::default()).await.len(), 5);
        assert_eq!(
            ids(SearchFilter {
                segment: Some("retail".into()),
                ..Default::default()
            })
            .await,
            ["S-01", "S-03", "S-04"]
        );
        assert_eq!(
            ids(SearchFilter {
                need: Some(Need::Soothing),
                ..Default::default()
            })
            .await,
            ["S-01", "S-03", "S-05"]
        );
        assert_eq!(
            ids(SearchFilter {
                tag_kind: Some(TagKind::Caution),
                ..Default::default()
            })
            .await,
            ["S-01", "S-04", "S-05"]
        );
        assert_eq!(
            ids(SearchFilter {
                tier: Some(ValueTier::Vip),
                ..Default::default()
            })
            .await,
            ["S-02", "S-04", "S-05"]
        );
        assert_eq!(
            ids(SearchFilter {
                tier: Some(ValueTier::Preferred),
                ..Default::default()
            })
            .await,
            ["S-03"]
        );
        assert_eq!(
            ids(SearchFilter {
                segment: Some("retail".into()),
                need: Some(Need::Soothing),
                tag_kind: Some(TagKind::Caution),
                tier: Some(ValueTier::Standard),
            })
            .await,
            ["S-01"]
        );
        // The tier follows the value inputs on every write.
        let mut c = reference("S-03", "13800138002");
        c.assets = 6_000_000;
        c.contribution = 0;
        c.potential_value = 0;
        store.upsert_customer(&c, now()).await.expect("upsert");
        assert_eq!(
            ids(SearchFilter {
                tier: Some(ValueTier::Vip),
                ..Default::default()
            })
            .await,
            ["S-02", "S-03", "S-04", "S-05"]
        );
    }

    pub async fn export_profiles_pages_through_everyone<S: Store>(store: &S) {
        for i in 0..7 {
            let mut c = reference(&format!("X-{i}"), "13800138000");
            c.phones.clear();
            store.upsert_customer(&c, now()).await.expect("upsert");
            store
                .record_contact(&format!("X-{i}"), &contact("call-1", now()), now())
                .await
                .expect("contact");
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .export_profiles(after.as_deref(), 3, now())
                .await
                .expect("page");
            for p in &page {
                assert_eq!(p.summary.total_contacts, 1);
                seen.push(p.customer.customer_id.clone());
            }
            if page.len() < 3 {
                break;
            }
            after = seen.last().cloned();
        }
        assert_eq!(seen, ["X-0", "X-1", "X-2", "X-3", "X-4", "X-5", "X-6"]);
    }

    pub async fn export_ranges_from_page_ends_miss_no_one_inserted_meanwhile<S: Store>(store: &S) {
        for i in [0, 2, 4, 6, 8] {
            let mut c = reference(&format!("R-{i}"), "13800138000");
            c.phones.clear();
            store.upsert_customer(&c, now()).await.expect("upsert");
        }
        // Pages of 2: R-0..R-2, then R-4..R-6, then the rest.
        assert_eq!(
            store.page_end(None, 2).await.expect("end").as_deref(),
            Some("R-2")
        );
        assert_eq!(
            store
                .page_end(Some("R-2"), 2)
                .await
                .expect("end")
                .as_deref(),
            Some("R-6")
        );
        assert_eq!(store.page_end(Some("R-6"), 2).await.expect("end"), None);
        assert_eq!(store.page_end(Some("R-8"), 1).await.expect("end"), None);
        // Customers written between finding a page's end and loading it
        // land in their page (a bounded range has no row limit), and the
        // last range takes everything after its start.
        for i in [1, 5, 9] {
            let mut c = reference(&format!("R-{i}"), "13800138000");
            c.phones.clear();
            store.upsert_customer(&c, now()).await.expect("upsert");
        }
        let ids = |page: Vec<rapport_profile::model::Profile>| -> Vec<String> {
            page.into_iter().map(|p| p.customer.customer_id).collect()
        };
        let first = store
            .export_range(None, Some("R-2"), SummaryParts::Full, now())
            .await
            .expect("range");
        let second = store
            .export_range(Some("R-2"), Some("R-6"), SummaryParts::Lean, now())
            .await
            .expect("range");
        let last = store
            .export_range(Some("R-6"), None, SummaryParts::Full, now())
            .await
            .expect("range");
        assert_eq!(ids(first), ["R-0", "R-1", "R-2"]);
        assert_eq!(ids(second), ["R-4", "R-5", "R-6"]);
        assert_eq!(ids(last), ["R-8", "R-9"]);
    }

    pub async fn the_change_feed_records_every_kind_in_commit_order<S: Store>(store: &S) {
        let start = store.changes_after(0, 1000).await.expect("feed");
        assert!(start.is_empty());
        store
            .upsert_customer(&reference("C-F", "13800138000"), now())
            .await
            .expect("upsert");
        let mut complaint = contact("call-2", now());
        complaint.complaint = true;
        for c in [contact("call-1", now()), complaint.clone(), complaint] {
            store
                .record_contact("C-F", &c, now())
                .await
                .expect("contact");
        }
        store
            .set_preferences("C-F", &Preferences::default(), now())
            .await
            .expect("prefs");
        store
            .set_consent("C-F", &Consent::default(), now())
            .await
            .expect("consent");
        let event = NewEvent {
            event_id: Some("ev-1".into()),
            kind: "flight_cancelled".into(),
            detail: String::new(),
            occurred_at: now(),
        };
        store
            .record_event("C-F", &event, now())
            .await
            .expect("event");
        store
            .record_event("C-F", &event, now())
            .await
            .expect("repeat");
        let changes = store.changes_after(0, 1000).await.expect("feed");
        let kinds: Vec<(ChangeKind, &str)> = changes
            .iter()
            .map(|c| (c.kind, c.ref_id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::CustomerUpserted, ""),
                (ChangeKind::ContactRecorded, "call-1"),
                (ChangeKind::Complaint, "call-2"),
                (ChangeKind::PreferencesChanged, ""),
                (ChangeKind::ConsentChanged, ""),
                (ChangeKind::EventRecorded, "ev-1"),
            ],
            "repeats of idempotent writes announce nothing"
        );
        assert!(changes.windows(2).all(|w| w[0].change_id < w[1].change_id));
        assert!(
            changes
                .iter()
                .all(|c| c.customer_id == "C-F" && c.at == now())
        );
        // Resuming after a token returns exactly what followed it.
        let rest = store
            .changes_after(changes[2].change_id, 2)
            .await
            .expect("resume");
        assert_eq!(rest, changes[3..5]);
        // A failed write announces nothing.
        let _ = store
            .update_customer(
                "C-F",
                99,
                &patch(&[CustomerField::City], reference("C-F", "13800138000")),
                now(),
            )
            .await;
        let last = changes.last().map_or(0, |c| c.change_id);
        assert!(
            store
                .changes_after(last, 10)
                .await
                .expect("feed")
                .is_empty()
        );
    }

    pub async fn erase_removes_every_row_and_export_returns_everything<S: Store>(store: &S) {
        for id in ["C-GONE", "C-STAYS"] {
            let phone = if id == "C-GONE" {
                "13800138000"
            } else {
                "13900139000"
            };
            store
                .upsert_customer(&reference(id, phone), now())
                .await
                .expect("upsert");
            store
                .record_contact(id, &contact("call-1", now()), now())
                .await
                .expect("contact");
            store
                .record_event(
                    id,
                    &NewEvent {
                        event_id: None,
                        kind: "card_lost".into(),
                        detail: String::new(),
                        occurred_at: now(),
                    },
                    now(),
                )
                .await
                .expect("event");
            store
                .record_campaign_exposure(
                    id,
                    &CampaignExposure {
                        campaign_id: "launch".into(),
                        title: "Launch".into(),
                        channel: Channel::Email,
                        sent_at: now(),
                    },
                    now(),
                )
                .await
                .expect("campaign");
            store
                .add_care_note(
                    &NewCareNote {
                        customer_id: id.into(),
                        note_id: None,
                        contact_id: "call-1".into(),
                        author: "A-1".into(),
                        text: "follow-up done".into(),
                        topics: vec![],
                        added_tags: vec![tag(TagKind::Interest, "tea")],
                    },
                    now(),
                )
                .await
                .expect("note");
        }
        let export = store
            .export_customer("C-GONE", now())
            .await
            .expect("export");
        assert_eq!(export.customer.customer_id, "C-GONE");
        assert_eq!(export.customer.tags.len(), 3);
        assert_eq!(export.contacts.len(), 1);
        assert_eq!(export.care_notes.len(), 1);
        assert_eq!(export.events.len(), 1);
        assert_eq!(export.campaigns.len(), 1);

        let held: u64 = store
            .customer_rows("C-GONE")
            .await
            .expect("rows")
            .iter()
            .map(|(_, n)| n)
            .sum();
        let removed = store.erase_customer("C-GONE", now()).await.expect("erase");
        assert_eq!(removed, held);
        for (table, n) in store.customer_rows("C-GONE").await.expect("rows") {
            let expected = u64::from(table == "changes");
            assert_eq!(n, expected, "{table} still holds the erased customer");
        }
        let feed = store.changes_after(0, 1000).await.expect("feed");
        let gone: Vec<_> = feed.iter().filter(|c| c.customer_id == "C-GONE").collect();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].kind, ChangeKind::Erased);
        assert!(matches!(
            store.get_profile("C-GONE", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        assert!(matches!(
            store.lookup_by_phone(&e164("13800138000"), now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        assert!(matches!(
            store.export_customer("C-GONE", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        assert!(matches!(
            store.erase_customer("C-GONE", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        // The other customer is untouched, and the number is free again.
        let stays = store
            .export_customer("C-STAYS", now())
            .await
            .expect("export");
        assert_eq!(stays.contacts.len(), 1);
        assert_eq!(stays.care_notes.len(), 1);
        store
            .upsert_customer(&reference("C-NEW-OWNER", "13800138000"), now())
            .await
            .expect("the number can be reused");
    }

    pub async fn import_batches_write_whole_customers_and_replay_idempotently<S: Store>(store: &S) {
        let batch: Vec<ImportCustomer> = (0..30)
            .map(|i| {
                let mut c = reference(&format!("I-{i:03}"), &format!("1380000{i:04}"));
                c.assets = if i % 3 == 0 { 8_000_000 } else { 0 };
                c.contribution = 0;
                c.potential_value = 0;
                ImportCustomer {
                    customer: c,
                    contacts: (0..4)
                        .map(|k| contact(&format!("c-{k}"), now() - Duration::days(k)))
                        .collect(),
                }
            })
            .collect();
        let new = store.import_batch(&batch, now()).await.expect("import");
        assert_eq!(new, 120);
        let p = store.get_profile("I-003", now()).await.expect("get");
        assert_eq!(p.customer.tags.len(), 2);
        assert_eq!(p.customer.phones[0].number, "+8613800000003");
        assert_eq!(p.summary.total_contacts, 4);
        assert_eq!(p.summary.contacts_7d, 4);
        assert_eq!(p.summary.last_contact_at, Some(now()));
        let vip = store
            .search_customers(
                &SearchFilter {
                    tier: Some(ValueTier::Vip),
                    ..Default::default()
                },
                None,
                100,
                now(),
            )
            .await
            .expect("search");
        assert_eq!(vip.len(), 10);

        // Replaying the batch (a crash after commit, before the checkpoint)
        // changes nothing that matters.
        let new = store.import_batch(&batch, now()).await.expect("replay");
        assert_eq!(new, 0);
        let p = store.get_profile("I-003", now()).await.expect("get");
        assert_eq!(p.summary.total_contacts, 4);
        assert_eq!(p.customer.tags.len(), 2);

        // A row whose phone belongs to someone else fails the whole batch,
        // naming the row; nothing of the batch is written.
        let bad = vec![
            ImportCustomer {
                customer: reference("I-NEW-1", "13900000001"),
                contacts: vec![contact("c-1", now())],
            },
            ImportCustomer {
                customer: reference("I-NEW-2", "13800000005"),
                contacts: vec![],
            },
        ];
        match store.import_batch(&bad, now()).await {
            Err(StoreError::BatchRow { row: 1, source }) => {
                assert!(matches!(*source, StoreError::PhoneTaken { index: 0 }));
            }
            other => panic!("expected row 1 to be refused: {other:?}"),
        }
        assert!(matches!(
            store.get_profile("I-NEW-1", now()).await,
            Err(StoreError::CustomerNotFound)
        ));
        let upserted = store
            .changes_after(0, 1000)
            .await
            .expect("feed")
            .iter()
            .filter(|c| c.kind == ChangeKind::CustomerUpserted)
            .count();
        assert_eq!(upserted, 60, "one change per imported customer and batch");
    }

    /// The all-time total and last contact come from the customer row:
    /// out-of-order recordings keep the latest time, repeats count once.
    pub async fn totals_are_maintained_without_counting_the_history<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-T", "13800138000"), now())
            .await
            .expect("upsert");
        let newest = now() - Duration::days(1);
        for (id, at) in [
            ("a", newest),
            ("b", now() - Duration::days(400)),
            ("a", newest),
            ("c", now() - Duration::days(2)),
        ] {
            store
                .record_contact("C-T", &contact(id, at), now())
                .await
                .expect("record");
        }
        let s = store.get_profile("C-T", now()).await.expect("get").summary;
        assert_eq!(s.total_contacts, 3);
        assert_eq!(s.contacts_90d, 2);
        assert_eq!(s.last_contact_at, Some(newest));
        // An upsert of the record keeps the totals.
        store
            .upsert_customer(&reference("C-T", "13800138000"), now())
            .await
            .expect("upsert");
        let s = store.get_profile("C-T", now()).await.expect("get").summary;
        assert_eq!(s.total_contacts, 3);
    }

    pub async fn summary_has_outbound_and_complaint_facts<S: Store>(store: &S) {
        store
            .upsert_customer(&reference("C-O", "13800138000"), now())
            .await
            .expect("upsert");
        let day = |d: i64| now() - Duration::days(d);
        let outbound = |id: &str, at| Contact {
            direction: Direction::Outbound,
            ..contact(id, at)
        };
        let complaint = |id: &str, at, outcome| Contact {
            complaint: true,
            outcome: Some(outcome),
            ..contact(id, at)
        };
        for c in [
            outbound("o-3", day(3)),
            outbound("o-20", day(20)),
            // Outside 30 days: only last_outbound_at would see it.
            outbound("o-45", day(45)),
            complaint("k-5", day(5), ContactOutcome::Unresolved),
            complaint("k-2", day(2), ContactOutcome::Resolved),
            // The newest contact is neither.
            contact("i-1", day(1)),
        ] {
            store
                .record_contact("C-O", &c, now())
                .await
                .expect("record");
        }
        let s = store.get_profile("C-O", now()).await.expect("get").summary;
        assert_eq!(s.outbound_30d, 2);
        assert_eq!(s.last_outbound_at, Some(day(3)));
        assert_eq!(s.last_complaint_at, Some(day(2)));
        assert!(s.last_complaint_resolved);
        assert_eq!(s.last_contact_at, Some(day(1)));

        // Two complaints at one instant: the higher contact id is the newer
        // (the order of the history everywhere), and it is unresolved.
        let at = now() - Duration::hours(5);
        for c in [
            complaint("t-b", at, ContactOutcome::Escalated),
            complaint("t-a", at, ContactOutcome::Resolved),
        ] {
            store
                .record_contact("C-O", &c, now())
                .await
                .expect("record");
        }
        let s = store.get_profile("C-O", now()).await.expect("get").summary;
        assert_eq!(s.last_complaint_at, Some(at));
        assert!(!s.last_complaint_resolved);

        // Old outbound only; no complaint ever.
        let mut other = reference("C-O2", "13800138000");
        other.phones.clear();
        store.upsert_customer(&other, now()).await.expect("upsert");
        store
            .record_contact("C-O2", &outbound("o-200", day(200)), now())
            .await
            .expect("record");
        let s = store.get_profile("C-O2", now()).await.expect("get").summary;
        assert_eq!(s.outbound_30d, 0);
        assert_eq!(s.last_outbound_at, Some(day(200)));
        assert_eq!(s.last_complaint_at, None);
        assert!(!s.last_complaint_resolved);
    }

    /// Batched export reads many customers per statement: each profile
    /// must be exactly what a single read returns, limits per customer
    /// included.
    pub async fn export_batches_match_single_reads<S: Store>(store: &S) {
        let day = |d: i64| now() - Duration::days(d);
        let ids = ["B-0", "B-1", "B-2", "B-3", "B-4"];
        for (i, id) in ids.iter().enumerate() {
            let mut c = reference(id, "13800138000");
            c.phones = vec![
                PhoneInput {
                    number: e164(&format!("+8613900000{i}01")),
                    label: "mobile".into(),
                },
                PhoneInput {
                    number: e164(&format!("+8613900000{i}02")),
                    label: "home".into(),
                },
            ];
            store.upsert_customer(&c, now()).await.expect("upsert");
        }
        // B-0: nothing. B-1: 8 contacts, 4 of them at one instant around
        // the 5th newest (ties at the bound), one outbound complaint.
        let tie = day(3);
        for (k, at) in [day(1), day(2), tie, tie, tie, tie, day(4), day(100)]
            .into_iter()
            .enumerate()
        {
            let mut c = contact(&format!("c-{k}"), at);
            c.complaint = k == 2;
            c.direction = if k == 3 {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            store
                .record_contact("B-1", &c, now())
                .await
                .expect("record");
        }
        // B-2: 25 hang-ups after a wait (evidence capped at 20).
        for k in 0..25 {
            let c = Contact {
                outcome: Some(ContactOutcome::Abandoned),
                queue_wait_s: 30 + k,
                ..contact(&format!("w-{k:02}"), day(i64::from(k) + 1))
            };
            store
                .record_contact("B-2", &c, now())
                .await
                .expect("record");
        }
        // B-3: 25 events and 3 campaigns in 30 days, plus older ones.
        for k in 0..27 {
            let e = NewEvent {
                event_id: Some(format!("e-{k:02}")),
                kind: "card_lost".into(),
                detail: String::new(),
                occurred_at: day(k + 1),
            };
            store.record_event("B-3", &e, now()).await.expect("event");
        }
        for k in [2, 10, 29, 31] {
            let x = CampaignExposure {
                campaign_id: format!("cmp-{k}"),
                title: "t".into(),
                channel: Channel::Email,
                sent_at: day(k),
            };
            store
                .record_campaign_exposure("B-3", &x, now())
                .await
                .expect("campaign");
        }
        // B-4: seven agents with resolved, well-rated contacts.
        for k in 0..7 {
            for n in 0..=k {
                let c = Contact {
                    agent_id: format!("A-{k}"),
                    csat: Some(5),
                    ..contact(&format!("a-{k}-{n}"), day(i64::from(k * 10 + n) + 1))
                };
                store
                    .record_contact("B-4", &c, now())
                    .await
                    .expect("record");
            }
        }

        let mut single = Vec::new();
        for id in ids {
            single.push(store.get_profile(id, now()).await.expect("get"));
        }
        let b1 = &single[1].summary;
        let recent: Vec<&str> = b1
            .recent_contacts
            .iter()
            .map(|c| c.contact_id.as_str())
            .collect();
        assert_eq!(recent, ["c-0", "c-1", "c-5", "c-4", "c-3"]);
        assert_eq!(single[2].summary.waits_before_complaints.len(), 20);
        assert_eq!(single[2].summary.waits_before_complaints[0].wait_s, 30);
        assert_eq!(single[3].summary.recent_events.len(), 20);
        assert_eq!(single[3].summary.recent_campaigns.len(), 3);
        assert_eq!(
            single[4].summary.affinity_agent_ids,
            ["A-6", "A-5", "A-4", "A-3", "A-2"]
        );
        assert_eq!(single[1].customer.phones.len(), 2);
        // A point read by phone is the same profile (the point reads are
        // one statement each, the exports a batch of statements: the two
        // must not drift apart).
        for (i, expected) in single.iter().enumerate() {
            let by_phone = store
                .lookup_by_phone(&e164(&format!("+8613900000{i}02")), now())
                .await
                .expect("lookup");
            assert_eq!(&by_phone, expected);
        }

        for batch in [1, 2, 100] {
            let mut exported = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .export_profiles(after.as_deref(), batch, now())
                    .await
                    .expect("page");
                after = page.last().map(|p| p.customer.customer_id.clone());
                let done = page.len() < batch as usize;
                exported.extend(page);
                if done {
                    break;
                }
            }
            assert_eq!(exported, single, "batch of {batch}");
        }
        // Ranges give the same profiles; the lean ones lack exactly the
        // routing evidence (waits before complaints, affinity agents).
        let full = store
            .export_range(None, None, SummaryParts::Full, now())
            .await
            .expect("range");
        assert_eq!(full, single);
        let lean = store
            .export_range(None, Some("B-4"), SummaryParts::Lean, now())
            .await
            .expect("range");
        let mut expected = single.clone();
        for p in &mut expected {
            p.summary.waits_before_complaints.clear();
            p.summary.affinity_agent_ids.clear();
        }
        assert_eq!(lean, expected);
    }

    pub async fn the_change_feed_is_pruned_past_its_retention<S: Store>(store: &S) {
        let day = |d: i64| now() - Duration::days(d);
        // Changes at day 10, 9 and 8 (old) and one now.
        store
            .upsert_customer(&reference("C-P", "13800138000"), day(10))
            .await
            .expect("upsert");
        for (k, d) in [9, 8].into_iter().enumerate() {
            store
                .record_contact("C-P", &contact(&format!("p-{k}"), day(d)), day(d))
                .await
                .expect("record");
        }
        store
            .record_contact("C-P", &contact("p-new", now()), now())
            .await
            .expect("record");
        let all = store.changes_after(0, 100).await.expect("feed");
        assert_eq!(all.len(), 4);
        let tokens: Vec<i64> = all.iter().map(|c| c.change_id).collect();

        // Retention 7 days, pruned in chunks of 2.
        let before = day(7);
        assert_eq!(store.prune_changes(before, 2).await.expect("prune"), 2);
        assert_eq!(store.prune_changes(before, 2).await.expect("prune"), 1);
        assert_eq!(store.prune_changes(before, 2).await.expect("prune"), 0);

        // An empty token starts from the oldest change kept.
        let kept = store.changes_after(0, 100).await.expect("feed");
        assert_eq!(kept, all[3..].to_vec());
        // A token from before the horizon could have missed changes.
        for stale in &tokens[..2] {
            match store.changes_after(*stale, 100).await {
                Err(StoreError::ChangesPruned { horizon }) => assert_eq!(horizon, tokens[2]),
                other => panic!("token {stale}: expected ChangesPruned, got {other:?}"),
            }
        }
        // The newest pruned change's token has missed nothing.
        assert_eq!(
            store.changes_after(tokens[2], 100).await.expect("feed"),
            all[3..].to_vec()
        );
        assert!(
            store
                .changes_after(tokens[3], 100)
                .await
                .expect("feed")
                .is_empty()
        );
    }
}
