//! Channels to other Rapport services.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

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
    Ok(endpoint.connect_lazy())
}
