//! One received message's life in the push consumer: wait for a listener
//! slot, run the listener while keeping the message invisible, then
//! acknowledge it (success) or hide it for a back-off (failure).
//!
//! ```text
//! received ──► waiting for a slot ──► listener running ──► Success ──► ack (batched, acker.rs)
//!                 │       (the invisible time is renewed      └──► Failure ──► invisible for back-off(attempt)
//!                 │        throughout both stages)
//!                 └─ shutdown ──► invisible for 1 s (handed back to the group)
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::acker::AckRequest;
use super::{ConsumeResult, Shared};
use crate::consumer::ReceivedMessage;
use crate::error::Error;

/// The broker's shortest invisible time: a message handed back at shutdown
/// is delivered again after it.
const HAND_BACK: Duration = Duration::from_secs(1);
/// Longest retry back-off, as the broker's own redelivery policy.
const MAX_BACKOFF: Duration = Duration::from_secs(2 * 3600);
/// Pause before trying again a renewal that failed (the deadline permitting).
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// Back-off before a failed message is delivered again: `base` doubled per
/// earlier attempt, at most two hours.
pub(crate) fn backoff(attempt: i32, base: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).clamp(0, 20) as u32;
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// When to renew a message that is invisible until `deadline`: with a third
/// of its invisible time left, which covers a renewal's round trip even for
/// the shortest invisible time (1 s).
fn renew_at(deadline: Instant, invisible: Duration) -> Instant {
    deadline.checked_sub(invisible / 3).unwrap_or(deadline)
}

/// `deadline`: when the broker will make `m` visible again, estimated from
/// the moment the receive request was sent (so never later than the broker's).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    mut m: ReceivedMessage,
    deadline: Instant,
    stop: watch::Receiver<bool>,
    acks: mpsc::UnboundedSender<AckRequest>,
) {
    let bytes = m.body.len();
    let outcome = listen_renewing(&shared, &mut m, deadline, stop).await;
    let stats = &shared.stats;
    match outcome {
        Some(ConsumeResult::Success) => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            match ack(&shared, &m, &acks).await {
                Ok(()) => stats.acked.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    // The broker will deliver it again: at least once, never lost.
                    tracing::warn!(message_id = %m.message_id, "ack failed: {e}");
                    stats.ack_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        Some(ConsumeResult::Failure) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            let wait = backoff(m.delivery_attempt, shared.config.retry_backoff);
            if let Err(e) = shared.consumer.change_invisible(&mut m, wait).await {
                // Redelivered anyway, when the current invisible time runs out.
                tracing::debug!(message_id = %m.message_id, "back-off not set: {e}");
            }
        }
        None => {
            stats.handed_back.fetch_add(1, Ordering::Relaxed);
            let _ = shared.consumer.change_invisible(&mut m, HAND_BACK).await;
        }
    }
    shared.flow.release(bytes);
}

/// Through the batching ack task; directly should that task be gone.
async fn ack(shared: &Shared, m: &ReceivedMessage, acks: &mpsc::UnboundedSender<AckRequest>) -> Result<(), Error> {
    let (done, result) = oneshot::channel();
    if acks.send(AckRequest { message: m.clone(), done }).is_ok()
        && let Ok(r) = result.await
    {
        return r;
    }
    shared.consumer.ack(m).await
}

/// Runs the listener once a slot is free, renewing `m`'s invisible time
/// (and keeping its new receipt handle) until it returns. `None`: shutdown
/// came before a slot did.
async fn listen_renewing(
    shared: &Arc<Shared>,
    m: &mut ReceivedMessage,
    mut deadline: Instant,
    mut stop: watch::Receiver<bool>,
) -> Option<ConsumeResult> {
    let invisible = shared.config.invisible;
    let listen = {
        let (shared, msg) = (shared.clone(), m.clone());
        async move {
            let _slot = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return None,
                slot = shared.slots.acquire() => slot.ok()?,
            };
            let listener = shared.listener.clone();
            // The listener may block (it is a plain Fn): run it where blocking
            // does not stall the runtime, and a panic counts as a failure.
            Some(tokio::task::spawn_blocking(move || listener(&msg)).await.unwrap_or(ConsumeResult::Failure))
        }
    };
    tokio::pin!(listen);
    let mut next_renewal = renew_at(deadline, invisible);
    loop {
        tokio::select! {
            r = &mut listen => return r,
            _ = tokio::time::sleep_until(next_renewal) => {
                let sent = Instant::now();
                match shared.consumer.change_invisible(m, invisible).await {
                    Ok(()) => {
                        shared.stats.renewals.fetch_add(1, Ordering::Relaxed);
                        deadline = sent + invisible;
                        next_renewal = renew_at(deadline, invisible);
                    }
                    Err(e) => {
                        shared.stats.renew_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(message_id = %m.message_id, "invisible time not renewed: {e}");
                        // Past the deadline the handle is likely stale (another
                        // consumer may hold the message); stop renewing then.
                        next_renewal = if Instant::now() + RENEW_RETRY < deadline {
                            Instant::now() + RENEW_RETRY
                        } else {
                            Instant::now() + MAX_BACKOFF
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_up_to_two_hours() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(1, base), Duration::from_secs(1));
        assert_eq!(backoff(2, base), Duration::from_secs(2));
        assert_eq!(backoff(5, base), Duration::from_secs(16));
        assert_eq!(backoff(30, base), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX, base), MAX_BACKOFF);
        // A broker that sends no attempt counts as a first delivery.
        assert_eq!(backoff(0, base), base);
        assert_eq!(backoff(-3, base), base);
    }

    #[test]
    fn renewal_leaves_a_third_of_the_invisible_time() {
        let now = Instant::now();
        let invisible = Duration::from_secs(3);
        assert_eq!(renew_at(now + invisible, invisible), now + Duration::from_secs(2));
    }
}
