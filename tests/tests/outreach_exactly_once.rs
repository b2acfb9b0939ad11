//! Two scheduler processes share 10,000 due care tasks; one is killed with
//! SIGKILL in the middle. Every task must reach the dialers, and each
//! exactly once as a dispatch: the dialers' log may hold redeliveries of a
//! request (same idempotency key, same stream entry), never a second
//! dispatch of the same task.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use nix::sys::signal::Signal;
use rapport_proto as pb;
use rapport_proto::outreach_service_client::OutreachServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_testkit::redis::TestRedis;
use rapportctl::mesh::{Service, connect, spawn_healthy};

/// The default care policy with 2 s leases and redelivery (crashes show in
/// seconds) and no dial pacing to speak of.
const SHORT_LEASES: &[(&str, &str)] = &[
    ("lease_seconds", "2"),
    ("redelivery_seconds", "2"),
    ("claim_batch", "100"),
    ("max_dials_per_second", "10000"),
];

const TASKS: usize = 10_000;

#[derive(Default)]
struct DialerLog {
    /// task id -> stream entry ids seen (one per dispatch).
    entries: HashMap<String, HashSet<String>>,
    /// idempotency key -> times delivered.
    deliveries: HashMap<String, u32>,
}

async fn dialer(name: &'static str, url: String, log: Arc<Mutex<DialerLog>>) -> anyhow::Result<()> {
    let mut client = OutreachServiceClient::new(connect(&url).await?);
    let mut stream = client
        .watch_outbound(pb::WatchOutboundRequest {
            dialer_id: name.to_owned(),
        })
        .await?
        .into_inner();
    while let Some(Ok(request)) = stream.next().await {
        let task_id = request
            .task
            .as_ref()
            .map(|t| t.task_id.clone())
            .unwrap_or_default();
        {
            let mut log = log.lock().expect("log");
            log.entries
                .entry(task_id)
                .or_default()
                .insert(request.delivery_id.clone());
            *log.deliveries
                .entry(request.idempotency_key.clone())
                .or_default() += 1;
        }
        if client
            .ack_dial(pb::AckDialRequest {
                dialer_id: name.to_owned(),
                delivery_id: request.delivery_id,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_one_killed_every_task_dispatched_exactly_once() -> anyhow::Result<()> {
    let redis = TestRedis::start()?;
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("profile.db").display());
    let profile = spawn_healthy(
        dir.path(),
        "profile",
        &[("RAPPORT_DATABASE_URL", db.as_str())],
    )
    .await?;
    let policy = rapportctl::scenario::outreach_policy_with(dir.path(), SHORT_LEASES)?;
    let policy = policy.display().to_string();
    let env = [
        ("RAPPORT_REDIS_URL", redis.url().to_owned()),
        ("RAPPORT_PROFILE_URL", profile.url()),
        // The dialer assigns agents; no routing, no blending gate.
        ("RAPPORT_ROUTING_URL", String::new()),
        ("RAPPORT_FOLLOW_FEED", "false".to_owned()),
        ("RAPPORT_OUTREACH_POLICY", policy.clone()),
        ("RAPPORT_CLAIM_INTERVAL", "50ms".to_owned()),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let env_a: Vec<(&str, String)> = env
        .iter()
        .cloned()
        .chain([("RAPPORT_REPLICA_ID", "replica-a".to_owned())])
        .collect();
    let env_b: Vec<(&str, String)> = env
        .iter()
        .cloned()
        .chain([("RAPPORT_REPLICA_ID", "replica-b".to_owned())])
        .collect();
    let mut a: Service = spawn_healthy(dir.path(), "outreach", &env_a).await?;
    let b: Service = spawn_healthy(dir.path(), "outreach", &env_b).await?;

    // 10,000 customers who agreed to care calls, in a zone where it is
    // mid-day now.
    let zone = rapportctl::scenario::daytime_zone();
    let profile_client = ProfileServiceClient::new(connect(&profile.url()).await?);
    rapportctl::scenario::seed_care_customers(&profile_client, TASKS, &zone).await?;

    let log = Arc::new(Mutex::new(DialerLog::default()));
    let d1 = tokio::spawn(dialer("dialer-1", a.url(), log.clone()));
    let d2 = tokio::spawn(dialer("dialer-2", b.url(), log.clone()));

    // Schedule the 10,000 tasks through both schedulers, all due a little
    // later so that they become due together while both replicas run.
    let due = chrono::Utc::now() + chrono::Duration::seconds(20);
    let due = prost_types::Timestamp {
        seconds: due.timestamp(),
        nanos: 0,
    };
    let urls = [a.url(), b.url()];
    let mut channels = Vec::new();
    for url in &urls {
        channels.push(connect(url).await?);
    }
    futures::stream::iter(0..TASKS)
        .map(|i| {
            let mut client = OutreachServiceClient::new(channels[i % 2].clone());
            async move {
                client
                    .schedule_care(pb::ScheduleCareRequest {
                        customer_id: format!("c{i:05}"),
                        reason: "exactly-once test".into(),
                        due_at: Some(due),
                        request_id: format!("eo-{i}"),
                        ..Default::default()
                    })
                    .await
            }
        })
        .buffer_unordered(32)
        .for_each(|r| {
            r.expect("scheduled");
            futures::future::ready(())
        })
        .await;

    // Kill replica A in the middle of dispatching.
    let started = Instant::now();
    loop {
        let seen = log.lock().expect("log").entries.len();
        if seen >= TASKS / 4 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.child.signal(Signal::SIGKILL)?;
    let _ = a.child.wait();
    let killed_at = log.lock().expect("log").entries.len();

    // Everything arrives through B within the deadline.
    let started = Instant::now();
    loop {
        let seen = log.lock().expect("log").entries.len();
        if seen >= TASKS {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(180),
            "only {seen} of {TASKS} tasks reached a dialer; replica B log:\n{}",
            b.log_text()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give redeliveries and any (wrong) second dispatch time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let log = log.lock().expect("log");
    assert_eq!(log.entries.len(), TASKS, "0 lost");
    let doubled: Vec<(&String, &HashSet<String>)> =
        log.entries.iter().filter(|(_, e)| e.len() != 1).collect();
    assert!(
        doubled.is_empty(),
        "{} tasks dispatched more than once, e.g. {:?}",
        doubled.len(),
        doubled.first()
    );
    assert!(
        killed_at < TASKS,
        "A was killed before the end ({killed_at})"
    );
    let redelivered = log.deliveries.values().filter(|n| **n > 1).count();
    eprintln!(
        "killed replica A after {killed_at} tasks; {redelivered} requests redelivered (same idempotency key)"
    );
    d1.abort();
    d2.abort();
    drop(b);
    Ok(())
}
