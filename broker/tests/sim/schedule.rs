//! The fault schedule: a pure function of the seed, printed with every failure.
//!
//! Two independent timelines over the fault phase: network faults one after another, each
//! healed (every link repaired, loss and latency back to normal) before the next, and crashes
//! of one replica at a time, each followed by a restart. "The leader" is a target resolved when
//! the fault fires (the replica that then leads in the highest term).

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Faults are injected during [0, FAULT_MS) of simulated time.
pub const FAULT_MS: u64 = 12_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Node(u64),
    Leader,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Cut every link of the target, both ways.
    Isolate(Target),
    /// Cut the link between two replicas, both ways (each still reaches the third).
    Partition(u64, u64),
    /// Drop everything the target sends to the others; it still hears them.
    SilenceOutbound(Target),
    /// Drop what `from` sends to `to` only.
    OneWay { from: u64, to: u64 },
    /// Links break at random (`fail_rate` per message) and come back (`repair_rate` per tick).
    Loss { fail_rate: f64, repair_rate: f64 },
    /// Messages take up to `max_ms` to arrive.
    Latency { max_ms: u64 },
    /// The target's process dies; with `lose_unsynced`, so does its page cache (power loss).
    /// It restarts after `down_ms`.
    Crash { target: Target, lose_unsynced: bool, down_ms: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at_ms: u64,
    /// How long a network fault lasts before everything is healed (unused for crashes).
    pub for_ms: u64,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub seed: u64,
    /// Sorted by `at_ms`.
    pub events: Vec<Event>,
}

fn node(rng: &mut StdRng) -> u64 {
    rng.random_range(1..=3)
}

fn target(rng: &mut StdRng) -> Target {
    if rng.random_bool(0.5) { Target::Leader } else { Target::Node(node(rng)) }
}

fn two_nodes(rng: &mut StdRng) -> (u64, u64) {
    let a = node(rng);
    let b = a % 3 + rng.random_range(0..2) + 1;
    (a, if b > 3 { b - 3 } else { b })
}

fn network_fault(rng: &mut StdRng) -> Fault {
    match rng.random_range(0..6) {
        0 => Fault::Isolate(target(rng)),
        1 => {
            let (a, b) = two_nodes(rng);
            Fault::Partition(a, b)
        }
        2 => Fault::SilenceOutbound(target(rng)),
        3 => {
            let (from, to) = two_nodes(rng);
            Fault::OneWay { from, to }
        }
        4 => Fault::Loss { fail_rate: rng.random_range(0.005..0.05), repair_rate: rng.random_range(0.05..0.5) },
        _ => Fault::Latency { max_ms: rng.random_range(50..400) },
    }
}

impl Schedule {
    pub fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut events = Vec::new();
        // Network faults, one at a time, with calm gaps between them.
        let mut t = rng.random_range(500..1500);
        while t < FAULT_MS {
            let for_ms = rng.random_range(300..3000).min(FAULT_MS - t);
            events.push(Event { at_ms: t, for_ms, fault: network_fault(&mut rng) });
            t += for_ms + rng.random_range(200..1500);
        }
        // Crashes, one replica down at a time.
        let mut t = rng.random_range(1000..3000);
        while t < FAULT_MS {
            let down_ms = rng.random_range(200..3000);
            let fault = Fault::Crash { target: target(&mut rng), lose_unsynced: rng.random_bool(0.7), down_ms };
            events.push(Event { at_ms: t, for_ms: 0, fault });
            t += down_ms + rng.random_range(300..3000);
        }
        events.sort_by_key(|e| e.at_ms);
        Self { seed, events }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault schedule of seed {}:", self.seed)?;
        for e in &self.events {
            match &e.fault {
                Fault::Crash { .. } => writeln!(f, "  {:>6} ms  {:?}", e.at_ms, e.fault)?,
                _ => writeln!(f, "  {:>6} ms  {:?} for {} ms", e.at_ms, e.fault, e.for_ms)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_function_of_the_seed() {
        assert_eq!(Schedule::generate(7), Schedule::generate(7));
        assert_ne!(Schedule::generate(7), Schedule::generate(8));
    }
}
