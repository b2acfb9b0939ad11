//! Channels to other Rapport services.

use std::time::Duration;

use tonic::transport::Endpoint;

use crate::observe::{Observe, ObserveLayer};

/// A channel to another Rapport service whose calls are traced (the W3C
/// context is injected into the metadata) and counted (`grpc_client_*`).
pub type Channel = Observe<tonic::transport::Channel>;

/// Failure to set up a client channel (a malformed URL).
#[derive(Debug, thiserror::Error)]
#[error("invalid {service} address {url:?}")]
pub struct ClientError {
    service: &'static str,
    url: String,
    #[source]
    source: tonic::transport::Error,
}

/// A lazily connected channel: the service starts even when the dependency
/// is not up yet, and each call reconnects as needed. `request_timeout`
/// bounds every call made on the channel.
pub fn channel(
    service: &'static str,
    url: &str,
    request_timeout: Duration,
) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| ClientError {
            service,
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(2))
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(tower::Layer::layer(
        &ObserveLayer::client(),
        endpoint.connect_lazy(),
    ))
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
