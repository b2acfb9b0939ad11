//! Channels to other Rapport services.

use std::time::Duration;

use tonic::transport::Endpoint;

use crate::authz::{Bearer, BearerLayer};
use crate::observe::{Observe, ObserveLayer};
use crate::resilience::{Breaker, BreakerConfig, BreakerLayer};
use crate::security::Security;

/// A channel to another Rapport service whose calls are traced (the W3C
/// context is injected into the metadata), counted (`grpc_client_*`),
/// carry the caller's remaining deadline and this service's own token, go
/// through a circuit breaker (one per channel, shared by its clones), and
/// use mTLS when configured.
pub type Channel = Observe<Breaker<Bearer<tonic::transport::Channel>>>;

/// Failure to set up a client channel (a malformed URL).
#[derive(Debug, thiserror::Error)]
#[error("invalid {service} address {url:?} or TLS settings")]
pub struct ClientError {
    service: &'static str,
    url: String,
    #[source]
    source: tonic::transport::Error,
}

/// HTTP/2 flow-control window per stream a client grants its server.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// HTTP/2 flow-control window per connection.
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// A lazily connected channel: the service starts even when the dependency
/// is not up yet, and each call reconnects as needed. `request_timeout`
/// bounds every call made on the channel. The circuit breaker has the
/// default settings ([`BreakerConfig::default`]).
pub fn channel(
    service: &'static str,
    url: &str,
    request_timeout: Duration,
    security: &Security,
) -> Result<Channel, ClientError> {
    channel_with(
        service,
        url,
        request_timeout,
        security,
        BreakerConfig::default(),
    )
}

/// [`channel`] with explicit circuit-breaker settings.
pub fn channel_with(
    service: &'static str,
    url: &str,
    request_timeout: Duration,
    security: &Security,
    breaker: BreakerConfig,
) -> Result<Channel, ClientError> {
    let fail = |source| ClientError {
        service,
        url: url.to_owned(),
        source,
    };
    // With mTLS the same service addresses are reached over https.
    let url = match (security.client_tls(), url.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => url.to_owned(),
    };
    let mut endpoint = Endpoint::from_shared(url.clone()).map_err(fail)?;
    if let Some(tls) = security.client_tls() {
        endpoint = endpoint.tls_config(tls).map_err(fail)?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(2))
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        // Streams such as ExportProfiles send many messages back to back;
        // HTTP/2's default 64 KiB window makes the sender wait for window
        // updates every few dozen profiles. Larger windows cost nothing on
        // the small unary calls.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW));
    let channel = tower::Layer::layer(
        &BearerLayer::new(security.outgoing_token()),
        endpoint.connect_lazy(),
    );
    // The breaker sits inside the observation, so a refused call is still
    // counted (as UNAVAILABLE) and traced like any other.
    let channel = tower::Layer::layer(&BreakerLayer::new(service, breaker), channel);
    Ok(tower::Layer::layer(&ObserveLayer::client(), channel))
}

/// Asks a dependency's grpc.health.v1 whether it is serving; for readiness
/// checks.
pub async fn check_health(channel: &Channel, service: &str) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    match ServingStatus::try_from(reply.into_inner().status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(other) => Err(other.as_str_name().to_lowercase()),
        Err(_) => Err("unknown health status".into()),
    }
}
