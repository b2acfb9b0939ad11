//! The outreach scenario: no-op care tasks claimed, dispatched and
//! acknowledged per second through the scheduler's real Redis scripts
//! (`rapport_outreach::store`), by `workers` replicas while a dialer reads
//! and acknowledges, against a private redis-server; beside it, in the
//! same run, the floor of a bare Redis list queue (pipelined LPUSH then
//! RPOP of same-sized payloads).

use std::time::{Duration, Instant};

use rapport_outreach::store::{Dispatch, Dispatched, Meta, NewTask, Source, Store, UpsertMode};
use rapport_proto as pb;
use serde::Serialize;

/// What one outreach run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimFigures {
    pub tasks: usize,
    pub workers: usize,
    pub seconds: f64,
    pub claimed_dispatched_acked_per_s: f64,
    pub index_writes_per_s: f64,
    pub floor_list_queue_push_pop_per_s: f64,
}

const BATCH: usize = 500;

fn task(i: usize, due_ms: i64) -> NewTask {
    NewTask {
        task: pb::CareTask {
            task_id: format!("bench:{i}"),
            customer_id: format!("c{i}"),
            kind: pb::CareTaskKind::Manual as i32,
            priority: 1,
            theme: "no-op".into(),
            ..Default::default()
        },
        due_ms,
        periodic: false,
        source: Source::Manual,
        meta: Meta {
            max_attempts: 1,
            ..Meta::default()
        },
    }
}

async fn floor(redis_url: &str, n: usize) -> anyhow::Result<f64> {
    let client = rapport_kit::redis::client(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let payload = vec![b'x'; 120];
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        let mut push = redis::pipe();
        for _ in 0..k {
            push.cmd("LPUSH").arg("floor:q").arg(&payload).ignore();
        }
        let () = push.query_async(&mut conn).await?;
        let mut pop = redis::pipe();
        for _ in 0..k {
            pop.cmd("RPOP").arg("floor:q");
        }
        let _: Vec<Option<Vec<u8>>> = pop.query_async(&mut conn).await?;
        left -= k;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Indexes `tasks` due no-op tasks, then times `workers` replicas claiming
/// and dispatching them while one dialer acknowledges, until every task is
/// acknowledged; then the list-queue floor on the same Redis.
pub async fn claim_and_ack(tasks: usize, workers: usize) -> anyhow::Result<ClaimFigures> {
    let redis = rapport_testkit::redis::TestRedis::start()?;
    let store = Store::connect(redis.url()).await?;
    let now = chrono::Utc::now().timestamp_millis();

    // Setup (not timed in the headline figure): write the index.
    let started = Instant::now();
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(BATCH) {
        let batch: Vec<(String, UpsertMode, Vec<NewTask>)> = chunk
            .iter()
            .map(|i| (format!("c{i}"), UpsertMode::Add, vec![task(*i, now - 1000)]))
            .collect();
        store.upsert_many(&batch, now).await?;
    }
    let index_rate = tasks as f64 / started.elapsed().as_secs_f64();

    // Timed: `workers` replicas claim and dispatch while a dialer reads and
    // acknowledges, until every task is acknowledged.
    let started = Instant::now();
    let mut replicas = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        replicas.spawn(async move {
            let owner = format!("bench-{w}");
            let mut dispatched = 0usize;
            loop {
                let now = chrono::Utc::now().timestamp_millis();
                let claimed = store
                    .claim(&owner, BATCH, Duration::from_secs(30), now)
                    .await?;
                if claimed.is_empty() {
                    return anyhow::Ok(dispatched);
                }
                let items: Vec<Dispatch> = claimed
                    .iter()
                    .map(|c| Dispatch {
                        id: c.id.clone(),
                        fence: c.fence,
                        capped: false,
                        request: pb::DialRequest {
                            idempotency_key: c.idempotency_key(),
                            fencing_token: c.fence,
                            customer_phone: "+8613800000000".into(),
                            ..Default::default()
                        },
                        agent_id: String::new(),
                    })
                    .collect();
                let out = store
                    .dispatch(&items, 0, Duration::from_secs(1), now)
                    .await?;
                dispatched += out
                    .iter()
                    .filter(|d| matches!(d, Dispatched::Published(_)))
                    .count();
            }
        });
    }
    let dialer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut reader = store.reader("bench-dialer").await?;
            let mut acked = 0usize;
            while acked < tasks {
                let got = reader
                    .next(BATCH, Duration::from_millis(200), Duration::from_secs(60))
                    .await?;
                let ids: Vec<String> = got.into_iter().map(|d| d.request.delivery_id).collect();
                acked += store.ack(&ids).await? as usize;
            }
            anyhow::Ok(acked)
        })
    };
    let mut dispatched = 0;
    while let Some(r) = replicas.join_next().await {
        dispatched += r??;
    }
    let acked = dialer.await??;
    let seconds = started.elapsed().as_secs_f64();
    let rate = acked as f64 / seconds;
    let floor = floor(redis.url(), tasks).await?;
    // Every task dispatched once and acknowledged once: a second dispatch
    // or a lost one fails the run rather than flattering the figure.
    anyhow::ensure!(dispatched == tasks, "dispatched {dispatched} of {tasks}");
    anyhow::ensure!(acked == tasks, "acknowledged {acked} of {tasks}");
    Ok(ClaimFigures {
        tasks,
        workers,
        seconds,
        claimed_dispatched_acked_per_s: rate,
        index_writes_per_s: index_rate,
        floor_list_queue_push_pop_per_s: floor,
    })
}
