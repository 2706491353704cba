//! The delay workload: delayed messages (RocketMQ's DELAY type) through a consumer group.
//!
//! Producers are the queue workload's ([`Workload::producer`]) with a [`DelayPlan`]: each value
//! is, by a draw seeded from the run's seed and the producer, either sent at once (one in
//! [`IMMEDIATE_ONE_IN`]) or with a delivery time [`MIN_DELAY`] to [`MAX_DELAY`] ahead, never
//! later than the plan's `latest_unix_ms` (so the wait before the drain stays short). The
//! broker acknowledges a delayed send at once with queue offset -1 and places it in its queue
//! when due; the history records the delay (`delay_ms`, from the invocation) and the delivery
//! time asked for (`deliver_at_unix_ms`), and the receipt's offset as it came (`-1`).
//!
//! [`DELAY_CONSUMERS`] consumers share the (not orderly) consumer group [`DELAY_GROUP`] and pop
//! and ack like the fifo workload's (`Workload::pop_consumer`): each pop is a `poll` with
//! `pop: true` and `reassigned: true`, each message acked (one `ack` op each), every 20th pop
//! left unacked so it comes back after the invisible time.
//!
//! After the faults are healed the runner waits until the latest delivery time asked for plus
//! the checker's grace ([`crate::checker::DELAY_GRACE_NS`]) and a second, then until the group
//! has consumed every queue, then drains every queue with the queue workload's pull
//! `final_read`. The checker's delay rules are in `checker/delay.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The consumer group the delay workload pops with.
pub const DELAY_GROUP: &str = "cg-delay";
/// Consumers in the group.
pub const DELAY_CONSUMERS: u64 = 4;
/// One value in this many is sent without a delivery time.
pub const IMMEDIATE_ONE_IN: u32 = 4;
/// The shortest and longest delay drawn.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// No delivery time is later than this after the time limit.
pub const LAST_DUE_AFTER_LIMIT: Duration = Duration::from_secs(10);

/// What the producers need for the delay workload.
#[derive(Clone, Debug)]
pub struct DelayPlan {
    pub seed: u64,
    /// No delivery time is later than this (Unix ms).
    pub latest_unix_ms: u64,
    /// The latest delivery time any producer has asked for (Unix ms; 0: none).
    pub latest_asked: Arc<AtomicU64>,
}

impl DelayPlan {
    pub fn new(seed: u64, latest_unix_ms: u64) -> Self {
        Self { seed, latest_unix_ms, latest_asked: Arc::new(AtomicU64::new(0)) }
    }

    /// Producer `p`'s draws.
    pub fn rng(&self, p: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ p.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The next value's delay in ms, or `None` to send it at once; `now_unix_ms` caps it at
    /// [`DelayPlan::latest_unix_ms`].
    pub fn draw(&self, rng: &mut StdRng, now_unix_ms: u64) -> Option<u64> {
        let immediate = rng.random_ratio(1, IMMEDIATE_ONE_IN);
        let delay = rng.random_range(MIN_DELAY.as_millis() as u64..=MAX_DELAY.as_millis() as u64);
        let room = self.latest_unix_ms.saturating_sub(now_unix_ms);
        (!immediate && room >= MIN_DELAY.as_millis() as u64).then(|| delay.min(room))
    }

    /// Notes a delivery time asked for.
    pub fn asked(&self, at_unix_ms: u64) {
        self.latest_asked.fetch_max(at_unix_ms, Ordering::Relaxed);
    }

    /// The latest delivery time asked for so far (Unix ms), if any.
    pub fn latest(&self) -> Option<u64> {
        Some(self.latest_asked.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_seeded_mixed_and_within_bounds() {
        let plan = DelayPlan::new(7, u64::MAX);
        let draws = |p| {
            let mut rng = plan.rng(p);
            (0..400).map(|_| plan.draw(&mut rng, 0)).collect::<Vec<_>>()
        };
        let a = draws(0);
        assert_eq!(a, draws(0), "seeded");
        assert_ne!(a, draws(1), "each producer draws its own");
        let immediate = a.iter().filter(|d| d.is_none()).count();
        assert!((50..150).contains(&immediate), "about one in four: {immediate}");
        let delays: Vec<u64> = a.iter().flatten().copied().collect();
        assert!(delays.iter().all(|d| (1_000..=30_000).contains(d)));
        assert!(delays.iter().any(|d| *d < 5_000) && delays.iter().any(|d| *d > 25_000), "spread");
    }

    #[test]
    fn delivery_times_stop_at_the_latest() {
        let plan = DelayPlan::new(1, 100_000);
        let mut rng = plan.rng(0);
        for _ in 0..100 {
            assert!(plan.draw(&mut rng, 95_000).is_none_or(|d| d <= 5_000));
            assert_eq!(plan.draw(&mut rng, 99_500), None, "less than the shortest delay left");
        }
        assert_eq!(plan.latest(), None);
        plan.asked(5);
        plan.asked(3);
        assert_eq!(plan.latest(), Some(5));
    }
}
