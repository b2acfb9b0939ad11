//! End to end: the four real binaries export traces to an OTLP receiver
//! started by this test. One RouteCall yields one trace across routing,
//! profile and classification, each server span's parent being the
//! caller's client span, with Redis and SQL spans inside; every service's
//! metrics endpoint serves the conventional gRPC metrics; a routed call's
//! log line carries its trace id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rapport_proto as pb;
use rapportctl::mesh::{Mesh, MeshOptions};
use rapportctl::scenario;

/// A span as received, with its service.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    out.push(Received {
                        service: service.clone(),
                        name: span.name.clone(),
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(out);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (receiver, format!("http://{addr}"))
}

async fn scrape(admin: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect admin");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    body
}

/// The value of the first sample of `name` with all `labels`, if present.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_route_call_is_one_trace_across_the_mesh() {
    let (receiver, endpoint) = start_receiver().await;
    let mesh = Mesh::start(MeshOptions {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..Default::default()
    })
    .await
    .expect("mesh starts");
    let mut profile = mesh.profile_client().await.expect("client");
    let mut routing = mesh.routing_client(0).await.expect("client");
    scenario::seed_profiles(&mut profile).await.expect("seed");
    scenario::login_agents(&mut routing, "")
        .await
        .expect("login");

    let before = scrape(&mesh.routing[0].admin).await;
    let response = routing
        .route_call(pb::RouteCallRequest {
            call_id: "traced-1".into(),
            caller_phone: scenario::VIP_PHONE.into(),
            ivr_selection: "personal_wealth".into(),
            ..Default::default()
        })
        .await
        .expect("routed");
    let trace_id = response
        .metadata()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-trace-id in the response metadata")
        .to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    let decision = response.into_inner();
    assert_eq!(decision.outcome, pb::RouteOutcome::Assigned as i32);

    // Wait for every service's spans of this trace to arrive.
    let deadline = Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let spans: Vec<Received> = receiver
            .spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        // Spans arrive in batches per service; wait for every one the test
        // asserts on (servers end last, so they are the signal).
        let servers: HashSet<&str> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .map(|s| s.service.as_str())
            .collect();
        let has = |system: &str| {
            spans
                .iter()
                .any(|s| s.attributes.get("db.system").is_some_and(|v| v == system))
        };
        if (servers.len() >= 3 && has("sqlite") && has("redis")) || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let summary: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{} {} kind={} parent={}",
                s.service, s.name, s.kind, s.parent_span_id
            )
        })
        .collect();

    for (service, rpc) in [
        ("rapport-routing", "rapport.v1.RoutingService/RouteCall"),
        ("rapport-profile", "rapport.v1.ProfileService/LookupByPhone"),
        (
            "rapport-classification",
            "rapport.v1.ClassificationService/Classify",
        ),
    ] {
        let server = spans
            .iter()
            .find(|s| s.service == service && s.name == rpc && s.kind == SpanKind::Server as i32)
            .unwrap_or_else(|| panic!("no server span {rpc} from {service} in {summary:#?}"));
        if service != "rapport-routing" {
            let parent = by_id
                .get(server.parent_span_id.as_str())
                .unwrap_or_else(|| panic!("{rpc}'s parent is not in the trace: {summary:#?}"));
            assert_eq!(parent.service, "rapport-routing", "{summary:#?}");
            assert_eq!(parent.kind, SpanKind::Client as i32, "{summary:#?}");
            assert_eq!(parent.name, rpc, "the client span names the same RPC");
        }
    }
    let sql = spans
        .iter()
        .find(|s| s.attributes.get("db.system").is_some_and(|v| v == "sqlite"))
        .unwrap_or_else(|| panic!("no SQL span in {summary:#?}"));
    assert_eq!(sql.service, "rapport-profile");
    let redis = spans
        .iter()
        .find(|s| s.attributes.get("db.system").is_some_and(|v| v == "redis"))
        .unwrap_or_else(|| panic!("no Redis span in {summary:#?}"));
    assert_eq!(redis.service, "rapport-routing");
    // No phone numbers in any span attribute.
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains("13859200001"), "phone leaked into {span:?}");
        }
    }

    // Metrics: conventional names and labels, counting this call.
    let after = scrape(&mesh.routing[0].admin).await;
    let labels = [
        "grpc_service=\"rapport.v1.RoutingService\"",
        "grpc_method=\"RouteCall\"",
        "grpc_code=\"OK\"",
    ];
    let handled_after =
        sample(&after, "grpc_server_handled_total", &labels).expect("handled_total");
    let handled_before = sample(&before, "grpc_server_handled_total", &labels).unwrap_or(0.0);
    assert_eq!(handled_after, handled_before + 1.0, "{after}");
    assert!(
        after.contains("grpc_server_handling_seconds_bucket"),
        "{after}"
    );
    assert!(after.contains("le=\"0.005\""), "explicit buckets: {after}");
    assert!(
        sample(
            &after,
            "grpc_client_handled_total",
            &["grpc_service=\"rapport.v1.ProfileService\""]
        )
        .is_some(),
        "client metrics: {after}"
    );
    for service in mesh.services() {
        let metrics = scrape(&service.admin).await;
        assert!(
            metrics.contains("grpc_server_handled_total"),
            "{}: {metrics}",
            service.name
        );
    }
    let profile_metrics = scrape(&mesh.profile.admin).await;
    assert!(
        profile_metrics.contains("rapport_profile_store_seconds"),
        "{profile_metrics}"
    );
    // The domain families operators chart, on the service that owns each.
    let domain = [
        (&mesh.routing[0], "rapport_routing_decisions_total"),
        (&mesh.routing[0], "rapport_routing_queue_length"),
        (
            &mesh.routing[0],
            "rapport_routing_queue_oldest_wait_seconds",
        ),
        (&mesh.routing[0], "rapport_routing_agents"),
        (&mesh.routing[0], "rapport_routing_offer_expiries_total"),
        (&mesh.routing[0], "rapport_routing_callbacks_offered_total"),
        (&mesh.routing[0], "rapport_routing_callbacks_accepted_total"),
        (&mesh.classification, "rapport_classification_seconds"),
        (&mesh.classification, "rapport_classification_flags_total"),
        (&mesh.outreach, "rapport_outreach_tasks_claimed_total"),
        (&mesh.outreach, "rapport_outreach_lease_expiries_total"),
        (&mesh.outreach, "rapport_outreach_dial_redeliveries_total"),
        (&mesh.outreach, "rapport_outreach_tasks_due"),
    ];
    // The per-group gauges exist once a group has activity in its window:
    // a contact answered or waiting. The desktop answers the offer, so the
    // group does not hang on what happens to an unanswered one (expiry,
    // re-offer, or an outreach care call that may or may not be due at
    // this hour of the seeded customers' day).
    let agent_id = decision
        .agent
        .as_ref()
        .map(|a| a.agent_id.clone())
        .expect("an assigned agent");
    routing
        .accept_offer(pb::AcceptOfferRequest {
            agent_id,
            offer_id: decision.offer_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the offer is accepted");
    for (service, family) in domain {
        // Gauges per requirement group appear at the next refresh (every
        // few seconds); give them up to 20 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let metrics = scrape(&service.admin).await;
            if metrics.contains(family) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no {family} in {metrics}",
                service.name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // The routed call counts as one assigned decision.
    let decisions = sample(
        &after,
        "rapport_routing_decisions_total",
        &["outcome=\"assigned\""],
    )
    .unwrap_or(0.0);
    let decisions_before = sample(
        &before,
        "rapport_routing_decisions_total",
        &["outcome=\"assigned\""],
    )
    .unwrap_or(0.0);
    assert_eq!(decisions, decisions_before + 1.0, "{after}");

    // The routed call's log line carries its trace id.
    let log = mesh.routing[0].log_text();
    let line = log
        .lines()
        .find(|l| l.contains("\"call_id\":\"traced-1\"") && l.contains("routed"))
        .unwrap_or_else(|| panic!("no log line for the call in {log}"));
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "{line}"
    );
    assert!(
        !log.contains("13859200001"),
        "phone number in the routing log"
    );
}
