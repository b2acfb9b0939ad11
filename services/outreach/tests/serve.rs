//! The scheduler in process against a real Redis and a real profile
//! service (SQLite), with an injected clock: bad input, rebuild from
//! profiles, care plans with reasons, deferral to legal hours, dispatch to a
//! dialer, outcomes written back, and fencing of stale outcomes.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use rapport_kit::Service as _;
use rapport_outreach::clock::ManualClock;
use rapport_outreach::{App, Config};
use rapport_proto as pb;
use rapport_proto::outreach_service_client::OutreachServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_testkit::redis::TestRedis;
use tonic::Code;
use tonic::transport::Channel;

struct Harness {
    _redis: TestRedis,
    _dir: tempfile::TempDir,
    clock: ManualClock,
    profile: ProfileServiceClient<Channel>,
    outreach: OutreachServiceClient<Channel>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connects")
}

/// 2026-03-02 is a Monday; 15:00 UTC is 23:00 in Shanghai.
fn monday(hour_utc: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour_utc, 0, 0)
        .single()
        .expect("valid")
}

async fn start(now: DateTime<Utc>, follow_feed: bool) -> Harness {
    let redis = TestRedis::start().expect("redis");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let profile = rapport_profile::App::build(rapport_profile::Config::for_tests(db))
        .await
        .expect("profile builds");
    let profile_addr = profile.local_addr();
    let (stop_p, stopped_p) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(profile.run(async {
        let _ = stopped_p.await;
    }));

    let clock = ManualClock::at(now);
    let mut config = Config::for_tests(redis.url(), &format!("http://{profile_addr}"));
    config.follow_feed = follow_feed;
    let app = App::build_with_clock(config, clock.clock())
        .await
        .expect("outreach builds");
    let addr = app.local_addr();
    let (stop_o, stopped_o) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = stopped_o.await;
    }));
    Harness {
        _redis: redis,
        _dir: dir,
        clock,
        profile: ProfileServiceClient::new(channel(profile_addr).await),
        outreach: OutreachServiceClient::new(channel(addr).await),
        stops: vec![stop_o, stop_p],
    }
}

impl Harness {
    /// Stores a customer who agreed to care calls; returns their phone.
    async fn customer(&mut self, id: &str, tz: &str, needs: &[(pb::Need, f64)]) -> String {
        // Every customer owns a number of their own: phones are unique.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let phone = format!("+86138{n:08}");
        self.profile
            .upsert_customer(pb::UpsertCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: id.into(),
                    name: "Test Customer".into(),
                    time_zone: tz.into(),
                    phones: vec![pb::Phone {
                        number: phone.clone(),
                        label: "mobile".into(),
                    }],
                    declared_needs: needs
                        .iter()
                        .map(|(n, w)| pb::NeedWeight {
                            need: *n as i32,
                            weight: *w,
                        })
                        .collect(),
                    consent: Some(pb::Consent {
                        care_calls: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })
            .await
            .expect("customer stored");
        phone
    }

    fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
    }
}

fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_unknown_customers_are_not_found() {
    let mut h = start(monday(3), false).await;
    h.customer("c1", "Asia/Shanghai", &[]).await;

    let err = h
        .outreach
        .schedule_care(pb::ScheduleCareRequest {
            customer_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    let err = h
        .outreach
        .schedule_callback(pb::ScheduleCallbackRequest {
            customer_id: "c1".into(),
            call_id: "call-1".into(),
            window: Some(pb::TimeRange {
                start: Some(ts(monday(1))),
                end: Some(ts(monday(2))),
            }),
            ..Default::default()
        })
        .await
        .expect_err("past window");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("window.end"), "{}", err.message());

    let err = h
        .outreach
        .schedule_callback(pb::ScheduleCallbackRequest {
            phone: "+8613800138001".into(),
            call_id: "call-2".into(),
            time_zone: "Mars/Olympus".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad zone");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("time_zone"), "{}", err.message());

    let err = h
        .outreach
        .schedule_care(pb::ScheduleCareRequest {
            customer_id: "c1".into(),
            due_at: Some(ts(monday(1))),
            ..Default::default()
        })
        .await
        .expect_err("past due");
    assert!(err.message().contains("due_at"), "{}", err.message());

    // An outcome for a task that was never dispatched.
    let task = h
        .outreach
        .schedule_care(pb::ScheduleCareRequest {
            customer_id: "c1".into(),
            due_at: Some(ts(monday(3) + chrono::Duration::days(3))),
            ..Default::default()
        })
        .await
        .expect("scheduled")
        .into_inner();
    let err = h
        .outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: 1,
            outcome: pb::CareOutcome::Reached as i32,
            ..Default::default()
        })
        .await
        .expect_err("not dispatched");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = h
        .outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: 1,
            ..Default::default()
        })
        .await
        .expect_err("no outcome");
    assert!(err.message().contains("outcome"), "{}", err.message());
    let err = h
        .outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: 1,
            outcome: pb::CareOutcome::Reached as i32,
            new_tags: vec!["golf".into()],
            ..Default::default()
        })
        .await
        .expect_err("bad tag");
    assert!(err.message().contains("new_tags[0]"), "{}", err.message());
    let err = h
        .outreach
        .ack_dial(pb::AckDialRequest {
            dialer_id: "d1".into(),
            delivery_id: "not-an-id".into(),
        })
        .await
        .expect_err("bad delivery id");
    assert!(err.message().contains("delivery_id"), "{}", err.message());
    let err = h
        .outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    h.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_plans_each_need_and_a_late_call_waits_for_legal_hours() {
    // 23:00 in Shanghai on a Monday.
    let mut h = start(monday(15), false).await;
    h.customer(
        "c-recog",
        "Asia/Shanghai",
        &[
            (pb::Need::Recognition, 0.8),
            (pb::Need::ImprovementMeasures, 0.5),
        ],
    )
    .await;
    let phone = h.customer("c-none", "Asia/Shanghai", &[]).await;
    let report = h
        .outreach
        .rebuild_due_index(pb::RebuildDueIndexRequest {})
        .await
        .expect("rebuilds")
        .into_inner();
    assert_eq!(report.customers, 2);
    let plan = h
        .outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "c-recog".into(),
        })
        .await
        .expect("plan")
        .into_inner();
    let needs: Vec<i32> = plan.tasks.iter().map(|t| t.need).collect();
    assert!(needs.contains(&(pb::Need::Recognition as i32)), "{plan:?}");
    assert!(
        needs.contains(&(pb::Need::ImprovementMeasures as i32)),
        "{plan:?}"
    );
    assert!(plan.tasks.iter().all(|t| !t.reason.is_empty()));

    // A manual care call due now, at 23:00 local: the loop defers it to
    // 08:00 local (00:00 UTC) with the reason, and does not drop it.
    let task = h
        .outreach
        .schedule_care(pb::ScheduleCareRequest {
            customer_id: "c-none".into(),
            reason: "operator check".into(),
            ..Default::default()
        })
        .await
        .expect("scheduled")
        .into_inner();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let deferred = loop {
        let plan = h
            .outreach
            .get_care_plan(pb::GetCarePlanRequest {
                customer_id: "c-none".into(),
            })
            .await
            .expect("plan")
            .into_inner();
        let t = plan
            .tasks
            .into_iter()
            .find(|t| t.task_id == task.task_id)
            .expect("still planned");
        if t.reason.contains("deferred") {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never deferred: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        deferred.reason.contains("outside_legal_hours"),
        "{}",
        deferred.reason
    );
    let due = deferred.due_at.expect("due").seconds;
    assert_eq!(
        due,
        (monday(0) + chrono::Duration::days(1)).timestamp(),
        "08:00 Shanghai"
    );

    // At 08:00 local it is dispatched to a dialer.
    h.clock
        .set(monday(0) + chrono::Duration::days(1) + chrono::Duration::minutes(1));
    let mut dial = h
        .outreach
        .watch_outbound(pb::WatchOutboundRequest {
            dialer_id: "d1".into(),
        })
        .await
        .expect("stream")
        .into_inner();
    let request = loop {
        let r = tokio::time::timeout(Duration::from_secs(20), dial.message())
            .await
            .expect("a dial request in time")
            .expect("stream ok")
            .expect("not ended");
        if r.task.as_ref().is_some_and(|t| t.task_id == task.task_id) {
            break r;
        }
    };
    assert_eq!(request.customer_phone, phone);

    // No answer: retried with spacing, same task, next attempt.
    let out = h
        .outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: request.fencing_token,
            outcome: pb::CareOutcome::NoAnswer as i32,
            ..Default::default()
        })
        .await
        .expect("recorded")
        .into_inner();
    let next = out.next.expect("retry planned");
    assert_eq!(next.state, pb::CareTaskState::Pending as i32);
    assert_eq!(next.attempt, 1);
    // The same token is now stale.
    let err = h
        .outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: request.fencing_token,
            outcome: pb::CareOutcome::Reached as i32,
            ..Default::default()
        })
        .await
        .expect_err("stale");
    assert_eq!(err.code(), Code::FailedPrecondition);
    h.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_plans_a_soothing_follow_up_and_opt_out_sets_do_not_call() {
    // 10:00 in Shanghai.
    let mut h = start(monday(2), true).await;
    h.customer("c-soothe", "Asia/Shanghai", &[(pb::Need::Soothing, 0.9)])
        .await;
    h.profile
        .record_contact(pb::RecordContactRequest {
            customer_id: "c-soothe".into(),
            contact: Some(pb::ContactRecord {
                contact_id: "complaint-1".into(),
                channel: pb::Channel::Voice as i32,
                direction: pb::Direction::Inbound as i32,
                started_at: Some(ts(monday(1))),
                complaint: true,
                outcome: pb::ContactOutcome::Resolved as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("recorded");
    let mut dial = h
        .outreach
        .watch_outbound(pb::WatchOutboundRequest {
            dialer_id: "d1".into(),
        })
        .await
        .expect("stream")
        .into_inner();
    let request = loop {
        let r = tokio::time::timeout(Duration::from_secs(30), dial.message())
            .await
            .expect("the follow-up is dialed")
            .expect("stream ok")
            .expect("not ended");
        if r.task
            .as_ref()
            .is_some_and(|t| t.kind == pb::CareTaskKind::SoothingFollowUp as i32)
        {
            break r;
        }
    };
    let task = request.task.clone().expect("task");
    assert_eq!(task.customer_id, "c-soothe");
    h.outreach
        .record_outcome(pb::RecordOutcomeRequest {
            task_id: task.task_id.clone(),
            fencing_token: request.fencing_token,
            outcome: pb::CareOutcome::OptedOut as i32,
            notes: "asked not to be called again".into(),
            ..Default::default()
        })
        .await
        .expect("recorded");
    let view = h
        .profile
        .get_profile(pb::GetProfileRequest {
            customer_id: "c-soothe".into(),
        })
        .await
        .expect("profile")
        .into_inner();
    let consent = view.customer.and_then(|c| c.consent).expect("consent");
    assert!(consent.do_not_call);
    assert!(!consent.care_calls);
    h.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_listing_and_cancellation_over_grpc() {
    let mut h = start(monday(15), false).await;
    h.customer("c-fc", "Asia/Shanghai", &[]).await;
    // Three Tuesdays at 10:00 Shanghai (02:00 UTC) in the weeks before.
    for (i, day) in [3, 10, 17].iter().enumerate() {
        let at = Utc
            .with_ymd_and_hms(2026, 2, *day, 2, 0, 0)
            .single()
            .expect("valid");
        h.profile
            .record_contact(pb::RecordContactRequest {
                customer_id: "c-fc".into(),
                contact: Some(pb::ContactRecord {
                    contact_id: format!("in-{i}"),
                    channel: pb::Channel::Voice as i32,
                    direction: pb::Direction::Inbound as i32,
                    started_at: Some(ts(at)),
                    handle_s: 180,
                    outcome: pb::ContactOutcome::Resolved as i32,
                    ..Default::default()
                }),
            })
            .await
            .expect("contact");
    }
    h.outreach
        .rebuild_due_index(pb::RebuildDueIndexRequest {})
        .await
        .expect("rebuilds");
    let forecast = h
        .outreach
        .get_forecast(pb::GetForecastRequest::default())
        .await
        .expect("forecast")
        .into_inner();
    assert_eq!(forecast.hours.len(), 168);
    let tuesday_10 = forecast
        .hours
        .iter()
        .find(|f| f.day == 2 && f.hour == 10)
        .expect("tuesday 10:00");
    // Three contacts over the eight weeks the forecast averages.
    assert!(
        (tuesday_10.expected_contacts - 3.0 / 8.0).abs() < 1e-9,
        "{tuesday_10:?}"
    );
    assert!(tuesday_10.agents_needed >= 1, "{tuesday_10:?}");
    let quiet = forecast
        .hours
        .iter()
        .find(|f| f.day == 2 && f.hour == 3)
        .expect("tuesday 03:00");
    assert_eq!(quiet.expected_contacts, 0.0);
    assert_eq!(quiet.agents_needed, 0);
    let err = h
        .outreach
        .get_forecast(pb::GetForecastRequest {
            target_service_level: 1.5,
            ..Default::default()
        })
        .await
        .expect_err("bad level");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("target_service_level"),
        "{}",
        err.message()
    );

    // Three manual tasks due now, listed two per page with a cursor (the
    // loop may already have deferred them to 08:00 local: still listed
    // before a week from now).
    let week_later = monday(15) + chrono::Duration::days(7);
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = h
            .outreach
            .schedule_care(pb::ScheduleCareRequest {
                customer_id: "c-fc".into(),
                reason: format!("listing {i}"),
                request_id: format!("list-{i}"),
                ..Default::default()
            })
            .await
            .expect("scheduled")
            .into_inner();
        ids.push(t.task_id);
    }
    let first = h
        .outreach
        .list_due(pb::ListDueRequest {
            page_size: 2,
            before: Some(ts(week_later)),
            ..Default::default()
        })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.tasks.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = h
        .outreach
        .list_due(pb::ListDueRequest {
            page_size: 2,
            before: Some(ts(week_later)),
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect("page 2")
        .into_inner();
    let listed: Vec<String> = first
        .tasks
        .iter()
        .chain(&second.tasks)
        .map(|t| t.task_id.clone())
        .filter(|id| id.starts_with("manual:list-"))
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let err = h
        .outreach
        .list_due(pb::ListDueRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .expect_err("page too large");
    assert!(err.message().contains("page_size"), "{}", err.message());

    // Cancelling one takes it out of the plan; an unknown id is NOT_FOUND.
    let cancelled = h
        .outreach
        .cancel_care(pb::CancelCareRequest {
            task_id: ids[0].clone(),
            reason: "customer asked".into(),
        })
        .await
        .expect("cancelled")
        .into_inner();
    assert_eq!(cancelled.state, pb::CareTaskState::Cancelled as i32);
    let plan = h
        .outreach
        .get_care_plan(pb::GetCarePlanRequest {
            customer_id: "c-fc".into(),
        })
        .await
        .expect("plan")
        .into_inner();
    assert!(plan.tasks.iter().all(|t| t.task_id != ids[0]));
    assert!(plan.tasks.iter().any(|t| t.task_id == ids[1]));
    let err = h
        .outreach
        .cancel_care(pb::CancelCareRequest {
            task_id: "manual:nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    h.stop();
}
