//! gRPC services. Handlers stay thin: decode, call the domain, encode.
//!
//! - [`messaging`]: `apache.rocketmq.v2.MessagingService` (clients).
//! - [`consume`] and [`receipt`]: pop consumption (receive, ack, invisible time) and receipt handles.
//! - [`convert`]: v2 wire messages ↔ stored messages.
//! - [`forward`]: follower → leader proposals.
//! - [`renew`]: the server's renewal of `auto_renew` deliveries (official push consumers).
//! - [`telemetry`]: the settings exchange and server-to-client command stream.
//! - [`admin`]: topics, group status, membership, leader transfer.

pub mod admin;
pub mod consume;
pub mod convert;
pub mod forward;
pub mod messaging;
pub mod receipt;
pub mod renew;
pub mod telemetry;

use std::time::Duration;

use raftmq_proto::rocketmq::v2::Code;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::proposer::Proposer;
use crate::sm::Shared;

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

/// Makes this replica's state at least as new as everything committed before
/// the call: the leader confirms its leadership and names its read index (a
/// Raft ReadIndex, no log write), and the answer waits until this replica has
/// applied up to it. Reads of replicated state (committed offsets, queue ends,
/// pop progress) after it never go back in time, even on a replica that just
/// restarted and is still catching up.
pub async fn read_barrier(proposer: &Proposer, shared: &Shared, deadline: Instant) -> Result<(), ApiError> {
    let index = proposer.read_index(deadline).await?;
    wait_applied(shared, index, deadline).await
}

/// Waits until this replica has applied log `index`.
pub async fn wait_applied(shared: &Shared, index: u64, deadline: Instant) -> Result<(), ApiError> {
    let mut applied = shared.subscribe_applied();
    match tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= index)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ApiError::internal("the state machine stopped")),
        Err(_) => Err(ApiError::new(
            Code::ProxyTimeout,
            format!("this replica did not apply log index {index} before the deadline"),
        )),
    }
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
