//! The one way a service opens its Redis client, so that every connection
//! to Redis gets the same socket options.

use ::redis::IntoConnectionInfo;
use ::redis::io::tcp::TcpSettings;

/// Opens a Redis client for `url` whose TCP connections set `TCP_NODELAY`.
///
/// redis-rs leaves Nagle's algorithm on by default. Every script call is a
/// small request answered by a small reply, so with Nagle on a request
/// written while an earlier reply's ACK is still owed can wait for the
/// peer's delayed ACK (up to 40 ms on Linux) before it leaves; that shows as
/// a fat p99 under load and nothing else. Redis itself sets `TCP_NODELAY`
/// on the sockets it accepts, so this makes both ends agree.
pub fn client(url: &str) -> ::redis::RedisResult<::redis::Client> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    ::redis::Client::open(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_sets_nodelay_and_keeps_the_url() {
        let client = client("redis://127.0.0.1:7001/3").expect("client");
        let info = client.get_connection_info();
        assert!(info.tcp_settings().nodelay());
        assert_eq!(info.addr().to_string(), "127.0.0.1:7001");
        assert_eq!(info.redis_settings().db(), 3);
    }

    #[test]
    fn a_bad_url_is_an_error() {
        assert!(client("http://nowhere").is_err());
    }
}
