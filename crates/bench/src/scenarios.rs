//! The scenarios and their data: logged-in agents and seeded profiles
//! (generators), and the ops — `route` (RouteCall timed, then AcceptOffer →
//! CompleteCall so the agent cycles back to ready), `get_profile`,
//! `lookup_phone`, `classify`. The route op keeps its own books of which
//! agent holds which contact, so it can count double assignments and lost
//! contacts without trusting the server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use rapport_proto as pb;
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::routing_service_client::RoutingServiceClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::load::{FollowUp, Op};

/// The IVR selection every bench contact takes (skill `general`, no VIP
/// rule, no widening), so every agent can serve every contact.
pub const SELECTION: &str = "general";

pub fn agent_id(i: usize) -> String {
    format!("bench-a{i:06}")
}

pub fn customer_id(i: usize) -> String {
    format!("BENCH-{i:07}")
}

/// A valid mainland mobile number, unique per customer.
/// The first seeded phone's digits after 139: above the range of
/// `rapportctl import --generate`, so both kinds of customers coexist.
const PHONE_BASE: usize = 20_000_000;

pub fn phone(i: usize) -> String {
    format!("139{:08}", PHONE_BASE + i)
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Logs agents `from..to` in, ready, `concurrency` at a time.
pub async fn login_agents(
    routing: &RoutingServiceClient<Channel>,
    from: usize,
    to: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    stream::iter(from..to)
        .map(|i| {
            let mut client = routing.clone();
            async move {
                client
                    .login_agent(pb::LoginAgentRequest {
                        agent: Some(pb::AgentProfile {
                            agent_id: agent_id(i),
                            name: format!("Agent {i}"),
                            kind: pb::AgentKind::Desk as i32,
                            skills: [("general".to_owned(), 5.0 + (i % 5) as f64)]
                                .into_iter()
                                .collect(),
                            languages: vec!["zh".into(), "en".into()],
                            // A third are complaints specialists who speak
                            // Minnan: the imported million (Xiamen callers,
                            // escalations and repeat calls in their
                            // histories) need them, and would otherwise
                            // queue for good.
                            dialects: if i % 3 == 0 {
                                vec!["minnan".into()]
                            } else {
                                Vec::new()
                            },
                            pools: if i % 3 == 0 {
                                vec!["complaints".into()]
                            } else {
                                Vec::new()
                            },
                            ..Default::default()
                        }),
                        ready: true,
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("login {}", agent_id(i)))
                    .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
}

/// Twenty past contacts of customer `i`: mostly resolved, two complaints.
pub fn history(i: usize, now_s: i64) -> Vec<pb::ContactRecord> {
    (0..20)
        .map(|k| {
            let complaint = k == 6 || k == 15;
            pb::ContactRecord {
                contact_id: format!("{}-h{k:02}", customer_id(i)),
                channel: pb::Channel::Voice as i32,
                direction: pb::Direction::Inbound as i32,
                started_at: Some(prost_types::Timestamp {
                    seconds: now_s - (200 - k as i64 * 9) * 86_400,
                    nanos: 0,
                }),
                ivr_selection: SELECTION.into(),
                queue_wait_s: 10 + (k as u32 % 7) * 5,
                handle_s: 180 + k as u32 * 11,
                agent_id: agent_id(k),
                outcome: if complaint {
                    pb::ContactOutcome::Unresolved
                } else {
                    pb::ContactOutcome::Resolved
                } as i32,
                complaint,
                csat: if complaint { 2 } else { 5 },
                ..Default::default()
            }
        })
        .collect()
}

/// Seeds the customers `ids` (`customer_id(i)`, `phone(i)`), each with a
/// phone and 20 contacts.
pub async fn seed_profiles(
    profile: &ProfileServiceClient<Channel>,
    ids: std::ops::Range<usize>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let now = now_s();
    stream::iter(ids)
        .map(|i| {
            let mut client = profile.clone();
            async move {
                client
                    .upsert_customer(pb::UpsertCustomerRequest {
                        customer: Some(pb::Customer {
                            customer_id: customer_id(i),
                            name: format!("Customer {i}"),
                            locale: "zh-CN".into(),
                            language: "zh".into(),
                            time_zone: "Asia/Shanghai".into(),
                            assets: 10_000 + (i as i64 % 50) * 1_000,
                            phones: vec![pb::Phone {
                                number: phone(i),
                                label: "mobile".into(),
                            }],
                            ..Default::default()
                        }),
                    })
                    .await
                    .with_context(|| format!("upsert {}", customer_id(i)))?;
                for contact in history(i, now) {
                    client
                        .record_contact(pb::RecordContactRequest {
                            customer_id: customer_id(i),
                            contact: Some(contact),
                        })
                        .await
                        .context("record contact")?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
}

/// What the route op's own books found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RouteBooks {
    pub routed: u64,
    pub assigned: u64,
    pub queued: u64,
    /// Queued contacts later handed to an agent by CompleteCall.
    pub assigned_from_queue: u64,
    pub completed: u64,
    /// An agent returned for a contact while our books still had it holding
    /// another one.
    pub double_assignments: u64,
    /// Routed contacts neither assigned nor queued (fallback, no outcome).
    pub lost: u64,
    /// Queued contacts never assigned by the end of the run.
    pub queued_at_end: u64,
    pub accept_errors: u64,
    pub complete_errors: u64,
    /// AcceptOffer / CompleteCall calls tried again after the mesh shed
    /// them (RESOURCE_EXHAUSTED) or could not be reached, as a desktop does.
    pub follow_up_retries: u64,
    /// Queued contacts by the requirement group routing queued them in:
    /// which requirements the logged-in agents could not meet at once.
    pub queued_by_group: BTreeMap<String, u64>,
}

impl RouteBooks {
    /// The books of two runs together.
    pub fn add(&mut self, o: &RouteBooks) {
        self.routed += o.routed;
        self.assigned += o.assigned;
        self.queued += o.queued;
        self.assigned_from_queue += o.assigned_from_queue;
        self.completed += o.completed;
        self.double_assignments += o.double_assignments;
        self.lost += o.lost;
        self.queued_at_end += o.queued_at_end;
        self.accept_errors += o.accept_errors;
        self.complete_errors += o.complete_errors;
        self.follow_up_retries += o.follow_up_retries;
        for (group, n) in &o.queued_by_group {
            *self.queued_by_group.entry(group.clone()).or_default() += n;
        }
    }
}

#[derive(Default)]
struct Books {
    counts: RouteBooks,
    /// agent → the contact it holds.
    holding: HashMap<String, String>,
    waiting: HashSet<String>,
}

/// RouteCall (timed), then AcceptOffer and CompleteCall (the follow-up),
/// which turns the agent ready again and may hand it a queued contact.
pub struct RouteOp {
    pub client: RoutingServiceClient<Channel>,
    /// Makes call ids unique across runs on one mesh.
    pub prefix: String,
    /// Callers' phones (seeded customers); anonymous callers when empty.
    pub phones: usize,
    /// Caller `n` dials from `139{first_phone + n % phones:08}`.
    first_phone: usize,
    books: Arc<Mutex<Books>>,
    seq: AtomicU64,
}

impl RouteOp {
    /// Callers are the customers `seed_profiles` wrote.
    pub fn new(client: RoutingServiceClient<Channel>, prefix: &str, phones: usize) -> Arc<Self> {
        Self::with_callers(client, prefix, phones, PHONE_BASE)
    }

    /// Callers are `phones` customers whose numbers start at
    /// `139{first_phone:08}` (0 for `rapportctl import --generate`'s).
    pub fn with_callers(
        client: RoutingServiceClient<Channel>,
        prefix: &str,
        phones: usize,
        first_phone: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            phones,
            first_phone,
            books: Arc::default(),
            seq: AtomicU64::new(0),
        })
    }

    pub fn books(&self) -> RouteBooks {
        let books = self.books.lock().expect("books");
        let mut counts = books.counts.clone();
        counts.queued_at_end = books.waiting.len() as u64;
        counts
    }
}

/// Books an assignment; true when it is a double assignment.
fn book_assignment(books: &Mutex<Books>, agent: &str, call: &str) -> bool {
    let mut b = books.lock().expect("books");
    b.waiting.remove(call);
    match b.holding.get(agent) {
        Some(held) if held != call => {
            b.counts.double_assignments += 1;
            true
        }
        _ => {
            b.holding.insert(agent.to_owned(), call.to_owned());
            false
        }
    }
}

/// Tries a desktop's call again, as a desktop does, while the mesh sheds it
/// or cannot be reached: up to 8 tries, 10 ms apart and doubling to 320 ms.
/// Giving up at once would leave the agent reserved for a contact that is
/// over, which no real desktop does.
async fn desktop_call<T, F, Fut>(books: &Mutex<Books>, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = std::time::Duration::from_millis(10);
    for _ in 1..8 {
        match call().await {
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                ) =>
            {
                books.lock().expect("books").counts.follow_up_retries += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(320));
            }
            result => return result,
        }
    }
    call().await
}

/// Accepts and completes `call` for `agent`, then whatever queued contact
/// the completion hands the agent, until it is handed none.
async fn cycle(
    client: RoutingServiceClient<Channel>,
    books: Arc<Mutex<Books>>,
    mut agent: String,
    mut call: String,
    mut offer: String,
) {
    loop {
        let accepted = desktop_call(&books, || {
            let mut client = client.clone();
            let request = pb::AcceptOfferRequest {
                agent_id: agent.clone(),
                offer_id: offer.clone(),
                ..Default::default()
            };
            async move { client.accept_offer(request).await.map(|_| ()) }
        })
        .await;
        if accepted.is_err() {
            books.lock().expect("books").counts.accept_errors += 1;
        }
        // The agent is released during CompleteCall: strike it from the books
        // before, so a RouteCall answered meanwhile is not miscounted.
        books.lock().expect("books").holding.remove(&agent);
        let done = desktop_call(&books, || {
            let mut client = client.clone();
            let request = pb::CompleteCallRequest {
                call_id: call.clone(),
                agent_id: agent.clone(),
                outcome: pb::ContactOutcome::Resolved as i32,
                handle_s: 60,
                csat: 5,
                ..Default::default()
            };
            async move { client.complete_call(request).await }
        })
        .await;
        let next = match done {
            Ok(reply) => {
                books.lock().expect("books").counts.completed += 1;
                reply
                    .into_inner()
                    .agent
                    .and_then(|a| a.assigned)
                    .filter(|d| d.outcome == pb::RouteOutcome::Assigned as i32)
            }
            Err(_) => {
                books.lock().expect("books").counts.complete_errors += 1;
                None
            }
        };
        let Some(next) = next else { return };
        let next_agent = next.agent.map(|a| a.agent_id).unwrap_or_default();
        books.lock().expect("books").counts.assigned_from_queue += 1;
        if book_assignment(&books, &next_agent, &next.call_id) {
            return;
        }
        (agent, call, offer) = (next_agent, next.call_id, next.offer_id);
    }
}

impl Op for RouteOp {
    fn call(&self, _i: u64) -> BoxFuture<'static, Result<Option<FollowUp>, tonic::Code>> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("{}-{n}", self.prefix);
        let caller_phone = if self.phones == 0 {
            String::new()
        } else {
            format!("139{:08}", self.first_phone + n as usize % self.phones)
        };
        let mut client = self.client.clone();
        let books = self.books.clone();
        async move {
            let decision = client
                .route_call(pb::RouteCallRequest {
                    call_id: call_id.clone(),
                    caller_phone,
                    ivr_selection: SELECTION.into(),
                    channel: pb::Channel::Voice as i32,
                    language_hint: "zh".into(),
                    ..Default::default()
                })
                .await
                .map_err(|s| s.code())?
                .into_inner();
            let outcome = pb::RouteOutcome::try_from(decision.outcome).ok();
            let mut b = books.lock().expect("books");
            b.counts.routed += 1;
            match outcome {
                Some(pb::RouteOutcome::Assigned) => {
                    b.counts.assigned += 1;
                    drop(b);
                    let agent = decision.agent.map(|a| a.agent_id).unwrap_or_default();
                    if book_assignment(&books, &agent, &call_id) {
                        return Ok(None);
                    }
                    Ok(Some(
                        cycle(client, books.clone(), agent, call_id, decision.offer_id).boxed(),
                    ))
                }
                Some(pb::RouteOutcome::Queued | pb::RouteOutcome::CallbackOffered) => {
                    b.counts.queued += 1;
                    let group = decision.requirements.map(|r| r.group).unwrap_or_default();
                    *b.counts.queued_by_group.entry(group).or_default() += 1;
                    b.waiting.insert(call_id);
                    Ok(None)
                }
                _ => {
                    b.counts.lost += 1;
                    Ok(None)
                }
            }
        }
        .boxed()
    }
}

/// GetProfile or LookupByPhone on seeded customers.
pub struct ProfileOp {
    pub client: ProfileServiceClient<Channel>,
    /// The first customer read (`customer_id(first)`).
    pub first: usize,
    /// Customers read, from `first` on.
    pub customers: usize,
    pub by_phone: bool,
}

impl Op for ProfileOp {
    fn call(&self, i: u64) -> BoxFuture<'static, Result<Option<FollowUp>, tonic::Code>> {
        let mut client = self.client.clone();
        let n = self.first + (i as usize).wrapping_mul(7919) % self.customers.max(1);
        let by_phone = self.by_phone;
        async move {
            let reply = if by_phone {
                client
                    .lookup_by_phone(pb::LookupByPhoneRequest { phone: phone(n) })
                    .await
            } else {
                client
                    .get_profile(pb::GetProfileRequest {
                        customer_id: customer_id(n),
                    })
                    .await
            };
            reply.map(|_| None).map_err(|s| s.code())
        }
        .boxed()
    }
}

/// About 500 characters of mixed Chinese and English, as a chat transcript.
pub fn classify_text() -> String {
    let base = "您好，我上个月在你们这里买的理财产品到期了，但是收益和当初经理说的不一样，\
我已经打了三次电话都没有人给我一个明确的答复，真的很失望。I was told the return would be \
around 4.2 percent, but the statement shows much less. 我不想再被转来转去了，请直接安排一位\
懂这个产品的专员和我联系，最好今天下午之前。如果还是解决不了，我会考虑把资金转到别的银行。\
My wife also has an account with you and we are both long-term customers. ";
    let mut text = String::new();
    while text.chars().count() < 500 {
        text.push_str(base);
    }
    text.chars().take(500).collect()
}

/// Classify with the text and a real 20-contact profile view.
pub struct ClassifyOp {
    pub client: ClassificationServiceClient<Channel>,
    pub request: pb::ClassifyRequest,
}

impl ClassifyOp {
    /// Builds the request from customer 0's stored profile (20 contacts).
    pub async fn new(
        client: ClassificationServiceClient<Channel>,
        profile: &mut ProfileServiceClient<Channel>,
    ) -> anyhow::Result<Arc<Self>> {
        let view = profile
            .get_profile(pb::GetProfileRequest {
                customer_id: customer_id(0),
            })
            .await
            .context("get the classify profile")?
            .into_inner();
        Ok(Arc::new(Self {
            client,
            request: pb::ClassifyRequest {
                profile: Some(view),
                contact: Some(pb::ContactContext {
                    channel: pb::Channel::Chat as i32,
                    ivr_selection: SELECTION.into(),
                    ..Default::default()
                }),
                text: classify_text(),
                language_hint: "zh".into(),
            },
        }))
    }
}

impl Op for ClassifyOp {
    fn call(&self, _i: u64) -> BoxFuture<'static, Result<Option<FollowUp>, tonic::Code>> {
        let mut client = self.client.clone();
        let request = self.request.clone();
        async move {
            client
                .classify(request)
                .await
                .map(|_| None)
                .map_err(|s| s.code())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classify_text_is_500_mixed_characters() {
        let text = classify_text();
        assert_eq!(text.chars().count(), 500);
        assert!(text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
        assert!(text.contains("return"));
    }

    #[test]
    fn an_agent_returned_while_holding_another_contact_is_a_double_assignment() {
        let books = Mutex::new(Books::default());
        assert!(!book_assignment(&books, "a", "c1"));
        // The same contact again (idempotent RouteCall) is not a double.
        assert!(!book_assignment(&books, "a", "c1"));
        assert!(book_assignment(&books, "a", "c2"));
        books.lock().unwrap().holding.remove("a");
        assert!(!book_assignment(&books, "a", "c2"));
        assert_eq!(books.lock().unwrap().counts.double_assignments, 1);
    }

    #[test]
    fn generated_ids_and_phones_are_unique_and_valid() {
        assert_eq!(phone(0).len(), 11);
        assert_ne!(phone(1), phone(2));
        assert_eq!(customer_id(12), "BENCH-0000012");
        assert_eq!(history(3, 1_000_000_000).len(), 20);
    }
}
