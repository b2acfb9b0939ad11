//! Local latency measurement of `classify` (not a test): a 500-character
//! bilingual text with a 20-contact history, classified many times;
//! prints p50/p99/max. Run with
//! `cargo run --release -p rapport-classification --example latency`.

use std::io::Write as _;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use rapport_classification::{Policy, classify};
use rapport_proto::{
    ClassifyRequest, ContactRecord, Customer, CustomerEvent, HistorySummary, ProfileView,
    WaitEvidence,
};

fn main() -> anyhow::Result<()> {
    let policy = Policy::builtin()?;
    rapport_classification::text::warm_up();
    let now = Utc::now();
    let ts = |days: i64| {
        Some(prost_types::Timestamp {
            seconds: (now - TimeDelta::days(days)).timestamp(),
            nanos: 0,
        })
    };
    let sentences = [
        "我是你们十几年的老客户了，上周卡被盗刷了五千块，",
        "打了四次电话都说在处理，到底什么时候能退回来？",
        "再不解决我就去银保监会投诉，还要找媒体曝光！",
        "I have called you five times this week and nobody gives me a date. ",
        "This is unacceptable, I want a refund and an apology. ",
    ];
    let mut text = String::new();
    while text.chars().count() < 500 {
        for s in sentences {
            text.push_str(s);
        }
    }
    let text: String = text.chars().take(500).collect();
    let contacts: Vec<ContactRecord> = (0..20)
        .map(|i| ContactRecord {
            contact_id: format!("C{i}"),
            started_at: ts(i),
            queue_wait_s: 40,
            handle_s: 600,
            complaint: i % 3 == 0,
            solutions_offered: 1,
            solutions_rejected: 1,
            ..ContactRecord::default()
        })
        .collect();
    let request = ClassifyRequest {
        profile: Some(ProfileView {
            customer: Some(Customer {
                city: "Xiamen".into(),
                assets: 8_000_000,
                ..Customer::default()
            }),
            summary: Some(HistorySummary {
                contacts_7d: 5,
                contacts_30d: 12,
                contacts_90d: 20,
                total_contacts: 20,
                complaints_90d: 7,
                solutions_rejected_90d: 20,
                compensation_asked_90d: 4,
                mean_handle_s_90d: 600,
                waits_before_complaints: (0..20)
                    .map(|i| WaitEvidence {
                        wait_s: 30 + i,
                        complaint: true,
                        abandoned: false,
                        at: ts(i64::from(i)),
                    })
                    .collect(),
                recent_contacts: contacts,
                recent_events: vec![CustomerEvent {
                    kind: "card_stolen".into(),
                    occurred_at: ts(1),
                    ..CustomerEvent::default()
                }],
                ..HistorySummary::default()
            }),
        }),
        text,
        ..ClassifyRequest::default()
    };

    for _ in 0..200 {
        std::hint::black_box(classify(&policy, &request, now));
    }
    let mut samples: Vec<f64> = (0..5_000)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(classify(&policy, &request, now));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    writeln!(
        std::io::stdout().lock(),
        "classify, 500 chars + 20-contact history, {} runs: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    )?;
    Ok(())
}
