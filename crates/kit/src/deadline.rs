//! Deadline propagation. A server reads the caller's `grpc-timeout` and
//! keeps the resulting deadline in a task-local for the duration of the
//! call; every outgoing call made while handling it carries the remaining
//! time as its own `grpc-timeout` (never more than the client's configured
//! timeout), so no hop keeps working for a caller that has given up.

use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit
/// (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    // Only ASCII can be valid, and checking first keeps the split below on
    // a character boundary (a multi-byte last character would panic).
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a duration as a `grpc-timeout` value, in the finest unit that
/// fits in 8 digits; at least 1 ms so an expired budget still fails fast
/// at the next hop instead of being sent without a deadline.
pub fn format_grpc_timeout(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        return "1m".to_owned();
    }
    if micros < 100_000_000 {
        format!("{micros}u")
    } else if d.as_millis() < 100_000_000 {
        format!("{}m", d.as_millis())
    } else {
        format!("{}S", d.as_secs().min(99_999_999))
    }
}

/// The deadline of the call being handled, if the caller set one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the current call's deadline, if any.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Runs `fut` with `deadline` as the current call's deadline.
pub async fn scope<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, fut).await,
        None => fut.await,
    }
}

/// Sets the outgoing `grpc-timeout` to the current call's remaining time
/// when that is shorter than what the request already carries.
pub(crate) fn apply_to(headers: &mut http::HeaderMap) {
    let Some(remaining) = remaining() else {
        return;
    };
    let existing = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    if existing.is_some_and(|e| e <= remaining) {
        return;
    }
    if let Ok(value) = http::HeaderValue::from_str(&format_grpc_timeout(remaining)) {
        headers.insert("grpc-timeout", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_round_trip() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789m"), None, "at most 8 digits");
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(
            parse_grpc_timeout("5®"),
            None,
            "non-ASCII is refused, not a panic"
        );
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(200),
            Duration::from_micros(7),
        ] {
            let back = parse_grpc_timeout(&format_grpc_timeout(d)).expect("parses");
            assert!(
                back <= d && d - back < Duration::from_millis(1),
                "{d:?} → {back:?}"
            );
        }
        assert_eq!(format_grpc_timeout(Duration::ZERO), "1m");
    }

    #[tokio::test(start_paused = true)]
    async fn outgoing_calls_inherit_the_remaining_budget() {
        let deadline = Instant::now() + Duration::from_millis(200);
        scope(Some(deadline), async {
            let mut headers = http::HeaderMap::new();
            apply_to(&mut headers);
            let sent = parse_grpc_timeout(headers["grpc-timeout"].to_str().expect("ascii"))
                .expect("valid");
            assert!(sent <= Duration::from_millis(200) && sent > Duration::from_millis(150));

            // A longer client timeout is tightened; a shorter one is kept.
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", http::HeaderValue::from_static("10S"));
            apply_to(&mut headers);
            assert_ne!(headers["grpc-timeout"], "10S");
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", http::HeaderValue::from_static("50m"));
            apply_to(&mut headers);
            assert_eq!(headers["grpc-timeout"], "50m");
        })
        .await;
        // Outside a call nothing is added.
        let mut headers = http::HeaderMap::new();
        apply_to(&mut headers);
        assert!(headers.get("grpc-timeout").is_none());
    }
}
