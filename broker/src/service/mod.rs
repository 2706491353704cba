//! gRPC services. Handlers stay thin: decode, call the domain, encode.
//!
//! - [`messaging`]: `apache.rocketmq.v2.MessagingService` (clients).
//! - [`consume`] and [`receipt`]: pop consumption (receive, ack, invisible time) and receipt handles.
//! - [`convert`]: v2 wire messages ↔ stored messages.
//! - [`forward`]: follower → leader proposals.
//! - [`telemetry`]: the settings exchange and server-to-client command stream.
//! - [`admin`]: topics, group status, membership, leader transfer.

pub mod admin;
pub mod consume;
pub mod convert;
pub mod forward;
pub mod messaging;
pub mod receipt;
pub mod telemetry;

use std::time::Duration;

use tokio::time::Instant;

/// Used when the caller sent no `grpc-timeout`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// The request's deadline, from its `grpc-timeout` header, less a margin so the
/// answer still arrives in time.
pub fn deadline_of<T>(req: &tonic::Request<T>) -> Instant {
    let timeout = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(DEFAULT_DEADLINE);
    let margin = (timeout / 10).min(Duration::from_millis(200));
    Instant::now() + timeout.saturating_sub(margin)
}

/// `grpc-timeout` is an integer of at most 8 digits and a unit letter.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("40000m"), Some(Duration::from_secs(40)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
