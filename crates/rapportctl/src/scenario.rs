//! The reference scenario of DESIGN.md §3 as data: customers with their
//! history and the agents of a small private-banking center. `make demo`
//! plays it and the end-to-end tests assert on it, so both use this one
//! definition.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rapport_proto as pb;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::routing_service_client::RoutingServiceClient;
use tonic::transport::Channel;

/// The VIP reference customer: 8,000,000 in deposits, private business
/// owner, 40, from Xiamen; 20 earlier contacts, three of them complaints
/// after transfer waits over 30 s.
pub const VIP_CUSTOMER: &str = "C-XM-0001";
/// His phone, as the IVR presents it (no country code).
pub const VIP_PHONE: &str = "138 5920 0001";
/// A standard customer from Shanghai.
pub const STANDARD_CUSTOMER: &str = "C-SH-0002";
pub const STANDARD_PHONE: &str = "139 1000 0002";
/// An English-speaking preferred customer.
pub const ENGLISH_CUSTOMER: &str = "C-US-0003";
pub const ENGLISH_PHONE: &str = "+1 415 555 2671";
/// A number nobody owns.
pub const UNKNOWN_PHONE: &str = "137 0000 9999";

/// The free VIP agent who speaks Minnan with the best wealth skill (9.6).
pub const LIN: &str = "lin";
/// VIP, higher wealth skill (9.9), no Minnan.
pub const WANG: &str = "wang";
/// Speaks Minnan, higher wealth skill (9.8), not in the VIP pool.
pub const CHEN_JIE: &str = "chen-jie";
/// VIP, Minnan, but below the VIP wealth threshold (9.3 < 9.5).
pub const ZHAO: &str = "zhao";
/// A cards agent.
pub const ZHOU: &str = "zhou";
/// Speaks English and Mandarin, cards and wealth.
pub const EMMA: &str = "emma";
/// 陈总's dedicated field account manager (kind FIELD), reached on her own
/// phone while her heartbeats arrive.
pub const FM_HUANG: &str = "fm-huang";
pub const FM_HUANG_PHONE: &str = "138 5920 8888";

/// Waits (seconds) before the VIP customer's three complaints.
pub const VIP_COMPLAINT_WAITS: [u32; 3] = [34, 38, 45];

fn ts(unix_s: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: unix_s,
        nanos: 0,
    })
}

/// Seconds since the epoch, now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn tag(kind: pb::TagKind, text: &str) -> pb::CommunicationTag {
    pb::CommunicationTag {
        kind: kind as i32,
        text: text.to_owned(),
        author: "crm-seed".to_owned(),
        ..Default::default()
    }
}

fn phone(number: &str, label: &str) -> pb::Phone {
    pb::Phone {
        number: number.to_owned(),
        label: label.to_owned(),
    }
}

/// The customers of the scenario.
pub fn customers() -> Vec<pb::Customer> {
    vec![
        pb::Customer {
            customer_id: VIP_CUSTOMER.to_owned(),
            name: "陈伟明".to_owned(),
            form_of_address: "陈总".to_owned(),
            locale: "zh-CN".to_owned(),
            language: "zh".to_owned(),
            region: "Fujian".to_owned(),
            city: "Xiamen".to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            age_band: "35-44".to_owned(),
            occupation: "private business owner".to_owned(),
            assets: 8_000_000,
            contribution: 120_000,
            segment: "private-banking".to_owned(),
            phones: vec![phone(VIP_PHONE, "mobile")],
            tags: vec![
                tag(pb::TagKind::AddressForm, "陈总"),
                tag(pb::TagKind::CallPattern, "calls Monday mornings"),
                tag(
                    pb::TagKind::HandlingHabit,
                    "wants written confirmation of every transaction",
                ),
                tag(
                    pb::TagKind::Caution,
                    "dislikes being transferred: complained three times after long transfer waits",
                ),
                tag(pb::TagKind::Interest, "tea culture, sailing"),
            ],
            preferences: Some(pb::Preferences {
                dedicated_field_manager_id: "fm-huang".to_owned(),
                language: "zh".to_owned(),
                ..Default::default()
            }),
            consent: Some(pb::Consent {
                care_calls: true,
                ..Default::default()
            }),
            ..Default::default()
        },
        pb::Customer {
            customer_id: STANDARD_CUSTOMER.to_owned(),
            name: "李娜".to_owned(),
            form_of_address: "李女士".to_owned(),
            locale: "zh-CN".to_owned(),
            language: "zh".to_owned(),
            region: "Shanghai".to_owned(),
            city: "Shanghai".to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            age_band: "25-34".to_owned(),
            occupation: "teacher".to_owned(),
            assets: 120_000,
            segment: "retail".to_owned(),
            phones: vec![phone(STANDARD_PHONE, "mobile")],
            ..Default::default()
        },
        pb::Customer {
            customer_id: ENGLISH_CUSTOMER.to_owned(),
            name: "John Carter".to_owned(),
            form_of_address: "Mr. Carter".to_owned(),
            locale: "en-US".to_owned(),
            language: "en".to_owned(),
            region: "California".to_owned(),
            city: "San Francisco".to_owned(),
            time_zone: "America/Los_Angeles".to_owned(),
            age_band: "45-54".to_owned(),
            occupation: "engineer".to_owned(),
            assets: 900_000,
            segment: "expat".to_owned(),
            phones: vec![phone(ENGLISH_PHONE, "mobile")],
            ..Default::default()
        },
    ]
}

/// The VIP customer's 20 earlier contacts, oldest first: three complaints
/// after transfer waits of 34, 38 and 45 s; the rest short and resolved.
pub fn vip_history(now_s: i64) -> Vec<pb::ContactRecord> {
    (0..20)
        .map(|i| {
            let days_ago = 200 - i * 10;
            let complaint_index = match i {
                4 => Some(0),
                11 => Some(1),
                17 => Some(2),
                _ => None,
            };
            let (wait, complaint, outcome, csat) = match complaint_index {
                Some(k) => (
                    VIP_COMPLAINT_WAITS[k],
                    true,
                    pb::ContactOutcome::Unresolved,
                    2,
                ),
                None => (
                    8 + (i as u32 % 5) * 2,
                    false,
                    pb::ContactOutcome::Resolved,
                    5,
                ),
            };
            pb::ContactRecord {
                contact_id: format!("hist-{VIP_CUSTOMER}-{i:02}"),
                channel: pb::Channel::Voice as i32,
                direction: pb::Direction::Inbound as i32,
                started_at: ts(now_s - days_ago * 86_400),
                ivr_selection: if i % 2 == 0 {
                    "personal_wealth"
                } else {
                    "personal_financial_services"
                }
                .to_owned(),
                queue_wait_s: wait,
                handle_s: 240 + i as u32 * 7,
                agent_id: if complaint { "" } else { LIN }.to_owned(),
                outcome: outcome as i32,
                complaint,
                csat,
                notes: if complaint {
                    "complained about the wait after a transfer".to_owned()
                } else {
                    String::new()
                },
                ..Default::default()
            }
        })
        .collect()
}

fn agent(
    id: &str,
    name: &str,
    skills: &[(&str, f64)],
    languages: &[&str],
    dialects: &[&str],
    pools: &[&str],
    empathy: f64,
) -> pb::AgentProfile {
    pb::AgentProfile {
        agent_id: id.to_owned(),
        name: name.to_owned(),
        kind: pb::AgentKind::Desk as i32,
        skills: skills.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        languages: languages.iter().map(|s| (*s).to_owned()).collect(),
        dialects: dialects.iter().map(|s| (*s).to_owned()).collect(),
        pools: pools.iter().map(|s| (*s).to_owned()).collect(),
        traits: Some(pb::AgentTraits {
            empathy,
            de_escalation: empathy - 0.5,
        }),
        ..Default::default()
    }
}

/// The agents of the scenario.
pub fn agents() -> Vec<pb::AgentProfile> {
    vec![
        agent(
            LIN,
            "林晓燕 Lin Xiaoyan",
            &[("wealth", 9.6), ("financial_services", 9.0)],
            &["zh"],
            &["minnan"],
            &["vip"],
            9.1,
        ),
        agent(
            WANG,
            "王磊 Wang Lei",
            &[("wealth", 9.9)],
            &["zh"],
            &[],
            &["vip"],
            8.0,
        ),
        agent(
            CHEN_JIE,
            "陈杰 Chen Jie",
            &[("wealth", 9.8)],
            &["zh"],
            &["minnan"],
            &[],
            7.5,
        ),
        agent(
            ZHAO,
            "赵敏 Zhao Min",
            &[("wealth", 9.3)],
            &["zh"],
            &["minnan"],
            &["vip"],
            8.5,
        ),
        agent(
            ZHOU,
            "周强 Zhou Qiang",
            &[("cards", 8.5), ("general", 7.0)],
            &["zh"],
            &[],
            &[],
            7.0,
        ),
        agent(
            EMMA,
            "Emma Liu",
            &[("cards", 8.0), ("wealth", 8.2), ("general", 7.0)],
            &["en", "zh"],
            &[],
            &[],
            8.8,
        ),
    ]
}

/// 陈总's dedicated field account manager.
pub fn field_manager() -> pb::AgentProfile {
    let mut fm = agent(
        FM_HUANG,
        "黄丽 Huang Li",
        &[("financial_services", 9.7), ("wealth", 9.2)],
        &["zh"],
        &["minnan"],
        &["vip"],
        9.3,
    );
    fm.kind = pb::AgentKind::Field as i32;
    fm.phone = FM_HUANG_PHONE.to_owned();
    fm
}

/// Seeds profile with the customers and the VIP's history.
pub async fn seed_profiles(profile: &mut ProfileServiceClient<Channel>) -> anyhow::Result<()> {
    let now = now_s();
    for customer in customers() {
        let id = customer.customer_id.clone();
        profile
            .upsert_customer(pb::UpsertCustomerRequest {
                customer: Some(customer),
            })
            .await
            .with_context(|| format!("failed to upsert customer {id}"))?;
    }
    for contact in vip_history(now) {
        profile
            .record_contact(pb::RecordContactRequest {
                customer_id: VIP_CUSTOMER.to_owned(),
                contact: Some(contact),
            })
            .await
            .context("failed to record a history contact")?;
    }
    Ok(())
}

/// Logs the field manager in, ready; she is on duty only after a heartbeat.
pub async fn login_field_manager(
    routing: &mut RoutingServiceClient<Channel>,
    center_id: &str,
) -> anyhow::Result<()> {
    routing
        .login_agent(pb::LoginAgentRequest {
            center_id: center_id.to_owned(),
            agent: Some(field_manager()),
            ready: true,
        })
        .await
        .context("failed to log in the field manager")?;
    Ok(())
}

/// Logs every agent in, ready, in the given center ("" = default).
pub async fn login_agents(
    routing: &mut RoutingServiceClient<Channel>,
    center_id: &str,
) -> anyhow::Result<()> {
    for agent in agents() {
        let id = agent.agent_id.clone();
        routing
            .login_agent(pb::LoginAgentRequest {
                center_id: center_id.to_owned(),
                agent: Some(agent),
                ready: true,
            })
            .await
            .with_context(|| format!("failed to log in agent {id}"))?;
    }
    Ok(())
}

/// An IVR's RouteCall for a caller's phone and menu selection.
pub fn route_request(call_id: &str, phone: &str, selection: &str) -> pb::RouteCallRequest {
    pb::RouteCallRequest {
        call_id: call_id.to_owned(),
        caller_phone: phone.to_owned(),
        ivr_selection: selection.to_owned(),
        ..Default::default()
    }
}

/// A fixed-offset IANA zone where it is now about 13:00, so legal calling
/// hours and contact windows allow a care call whenever a test runs.
/// (`Etc/GMT` signs are inverted: `Etc/GMT-8` is UTC+8.)
pub fn daytime_zone() -> String {
    use chrono::Timelike as _;
    let utc_hour = i32::try_from(chrono::Utc::now().hour()).unwrap_or(0);
    let mut offset = 13 - utc_hour;
    if offset > 12 {
        offset -= 24;
    }
    if offset < -11 {
        offset += 24;
    }
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Writes `outreach.toml` into `dir`: the repository's care policy with
/// the given `key = value` lines replaced (e.g. short leases for crash
/// tests). Fails when the policy has no such key.
pub fn outreach_policy_with(
    dir: &std::path::Path,
    overrides: &[(&str, &str)],
) -> anyhow::Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policy/outreach.toml");
    let mut text = std::fs::read_to_string(&root)
        .with_context(|| format!("failed to read {}", root.display()))?;
    for (key, value) in overrides {
        let mut out = String::new();
        let mut hit = false;
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with(&format!("{key} ")) || t.starts_with(&format!("{key}=")) {
                out.push_str(&format!("{key} = {value}\n"));
                hit = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        anyhow::ensure!(hit, "the care policy has no {key}");
        text = out;
    }
    let path = dir.join("outreach.toml");
    std::fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}

/// Stores `count` customers `c00000`… who agreed to care calls, in `zone`,
/// each with the phone `+86139` and their number: the population of the
/// scheduler's crash tests.
pub async fn seed_care_customers(
    profile: &ProfileServiceClient<Channel>,
    count: usize,
    zone: &str,
) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(0..count)
        .map(|i| {
            let mut client = profile.clone();
            async move {
                client
                    .upsert_customer(pb::UpsertCustomerRequest {
                        customer: Some(pb::Customer {
                            customer_id: format!("c{i:05}"),
                            name: format!("Customer {i}"),
                            time_zone: zone.to_owned(),
                            phones: vec![pb::Phone {
                                number: format!("+86139{i:08}"),
                                label: "mobile".into(),
                            }],
                            consent: Some(pb::Consent {
                                care_calls: true,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    })
                    .await
                    .with_context(|| format!("failed to store customer c{i:05}"))
            }
        })
        .buffer_unordered(16)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await
}
