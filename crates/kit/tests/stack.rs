//! The kit's server stack against real servers: load shedding answers
//! RESOURCE_EXHAUSTED at once (health checks still pass), and a caller's
//! deadline travels to the next hop as grpc-timeout.

use std::pin::Pin;
use std::time::{Duration, Instant};

use rapport_kit::config::ServerArgs;
use rapport_kit::server::GrpcServer;
use rapport_proto as pb;
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::classification_service_server::{
    ClassificationService, ClassificationServiceServer,
};
use tonic::{Request, Response, Status};

/// A test double: sleeps, then answers with the grpc-timeout it received
/// (in `policy_version`), or forwards to `next` first.
struct Slow {
    delay: Duration,
    next: Option<rapport_kit::client::Channel>,
}

#[tonic::async_trait]
impl ClassificationService for Slow {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        let received = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        tokio::time::sleep(self.delay).await;
        if let Some(next) = &self.next {
            let mut client = ClassificationServiceClient::new(next.clone());
            return client.classify(pb::ClassifyRequest::default()).await;
        }
        Ok(Response::new(pb::Classification {
            policy_version: received,
            ..Default::default()
        }))
    }

    type ClassifyStreamStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Classification, Status>> + Send>>;
    async fn classify_stream(
        &self,
        _: Request<tonic::Streaming<pb::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        Err(Status::unimplemented("test double"))
    }
}

async fn start(args: ServerArgs, service: Slow) -> (String, tokio::sync::oneshot::Sender<()>) {
    start_with(args, service, &[]).await
}

/// `finishing`: methods of the classification service given reserved
/// permits.
async fn start_with(
    args: ServerArgs,
    service: Slow,
    finishing: &[&str],
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = GrpcServer::bind(&args, 0)
        .await
        .expect("binds")
        .finishing_methods("rapport.v1.ClassificationService", finishing)
        .add_service(ClassificationServiceServer::new(service));
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Six slow calls at once against a limit of two: how many were served and
/// how many shed.
async fn served_and_shed(url: String) -> (usize, usize) {
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let calls = (0..6).map(|_| {
        let mut client = ClassificationServiceClient::new(channel.clone());
        async move { client.classify(pb::ClassifyRequest::default()).await }
    });
    let results = futures::future::join_all(calls).await;
    let served = results.iter().filter(|r| r.is_ok()).count();
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == tonic::Code::ResourceExhausted))
        .count();
    (served, shed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_methods_have_a_reserve_of_permits_and_are_shed_only_beyond_it() {
    let slow = || Slow {
        delay: Duration::from_millis(300),
        next: None,
    };
    let mut args = ServerArgs::ephemeral();
    args.max_concurrent_requests = 2;
    // Classify marked as finishing: two shared permits plus two reserved.
    let (url, _stop) = start_with(args.clone(), slow(), &["Classify"]).await;
    assert_eq!(served_and_shed(url).await, (4, 2));
    // Marking another method leaves Classify to the shared permits.
    let (url, _stop) = start_with(args, slow(), &["ClassifyStream"]).await;
    assert_eq!(served_and_shed(url).await, (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_calls_are_shed_at_once_but_health_is_not() {
    let mut args = ServerArgs::ephemeral();
    args.max_concurrent_requests = 2;
    let (url, _stop) = start(
        args,
        Slow {
            delay: Duration::from_millis(500),
            next: None,
        },
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connects");

    let started = Instant::now();
    let calls = (0..6).map(|_| {
        let mut client = ClassificationServiceClient::new(channel.clone());
        async move {
            let result = client.classify(pb::ClassifyRequest::default()).await;
            (result.map(|_| ()).map_err(|s| s.code()), started.elapsed())
        }
    });
    let health = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
    };
    let (results, health) = tokio::join!(futures::future::join_all(calls), health);
    let served = results.iter().filter(|(r, _)| r.is_ok()).count();
    let shed: Vec<_> = results
        .iter()
        .filter(|(r, _)| *r == Err(tonic::Code::ResourceExhausted))
        .collect();
    assert_eq!(served, 2, "{results:?}");
    assert_eq!(shed.len(), 4, "{results:?}");
    // Shed calls are answered at once: before any served call (each sleeps
    // 500 ms) has finished, i.e. they never queued behind them.
    let first_served = results
        .iter()
        .filter(|(r, _)| r.is_ok())
        .map(|(_, elapsed)| *elapsed)
        .min()
        .expect("served calls");
    for (_, elapsed) in shed {
        assert!(
            *elapsed < first_served,
            "shed after queueing: {elapsed:?} vs {first_served:?}"
        );
    }
    assert_eq!(
        health.expect("health answers during overload"),
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_reaches_the_next_hop() {
    let (last, _stop_last) = start(
        ServerArgs::ephemeral(),
        Slow {
            delay: Duration::ZERO,
            next: None,
        },
    )
    .await;
    // The middle hop's client allows 30 s; the caller's 800 ms must win.
    let next = rapport_kit::client::channel(
        "last",
        &last,
        Duration::from_secs(30),
        &rapport_kit::security::Security::insecure(),
    )
    .expect("channel");
    let (middle, _stop_middle) = start(
        ServerArgs::ephemeral(),
        Slow {
            delay: Duration::from_millis(100),
            next: Some(next),
        },
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(middle)
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut client = ClassificationServiceClient::new(channel);
    let mut request = Request::new(pb::ClassifyRequest::default());
    request.set_timeout(Duration::from_millis(800));
    let reply = client
        .classify(request)
        .await
        .expect("answers")
        .into_inner();
    let received =
        rapport_kit::deadline::parse_grpc_timeout(&reply.policy_version).unwrap_or_else(|| {
            panic!(
                "no grpc-timeout reached the last hop: {:?}",
                reply.policy_version
            )
        });
    // The caller's 800 ms, less what the middle hop spent, not the middle
    // hop's own 30 s client timeout.
    assert!(
        received < Duration::from_millis(800),
        "the time spent in the middle hop is deducted: {received:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_stays_serving_while_readiness_fails() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let server = GrpcServer::bind(&ServerArgs::ephemeral(), 0)
        .await
        .expect("binds")
        .add_service(ClassificationServiceServer::new(Slow {
            delay: Duration::ZERO,
            next: None,
        }))
        .readiness_check("redis", rapport_kit::server::Severity::Required, || async {
            Err("connection refused".to_owned())
        });
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.serve(std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    };
    let ready = health
        .check(status(""))
        .await
        .expect("answers")
        .into_inner()
        .status;
    assert_eq!(
        ready,
        ServingStatus::NotServing as i32,
        "unready without Redis"
    );
    let live = health
        .check(status(rapport_kit::server::LIVENESS))
        .await
        .expect("answers")
        .into_inner()
        .status;
    assert_eq!(live, ServingStatus::Serving as i32, "but alive");
}
