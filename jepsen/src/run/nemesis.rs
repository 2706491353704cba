//! The nemesis: plays the schedule against the [`Testbed`] and records every fault's start and
//! stop as `nemesis` operations in the history.
//!
//! A start is `ok` once the fault is certainly in effect, and `fail` (never took effect) when
//! there was nothing to hit (no leader found) or applying it failed; a stop is recorded only for
//! a start that took effect, and is `ok` once the fault is certainly healed.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::schedule::{FaultKind, Step};
use super::testbed::Testbed;
use crate::history::{Call, Fault, FaultAction, HistoryWriter, Process};

/// What a started fault did, so its stop can undo exactly that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// nft rules on these brokers.
    Partition(Vec<usize>),
    Killed(usize),
    Paused(usize),
}

impl Applied {
    fn targets(&self) -> Vec<usize> {
        match self {
            Applied::Partition(v) => v.clone(),
            Applied::Killed(i) | Applied::Paused(i) => vec![*i],
        }
    }
}

/// Splits nodes `1..=n` into two halves (the smaller first, at least one node each), by `pick`.
pub fn random_halves(n: usize, pick: u64) -> (Vec<usize>, Vec<usize>) {
    let mut nodes: Vec<usize> = (1..=n).collect();
    nodes.shuffle(&mut StdRng::seed_from_u64(pick));
    let small = nodes.split_off(n.div_ceil(2));
    let mut a = small;
    let mut b = nodes;
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

fn names(nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| Testbed::node_name(*i)).collect()
}

pub struct Nemesis {
    pub bed: Arc<Testbed>,
    pub history: Arc<HistoryWriter>,
}

impl Nemesis {
    /// Plays `steps`, timed from `t0`. Returns after the last stop; every fault it started is
    /// healed by then.
    pub async fn play(&self, steps: &[Step], t0: Instant) -> std::io::Result<()> {
        for step in steps {
            tokio::time::sleep_until(t0 + step.start).await;
            let Some(applied) = self.start(step).await? else { continue };
            tokio::time::sleep_until(t0 + step.stop).await;
            self.stop(step.fault, &applied).await?;
        }
        Ok(())
    }

    async fn start(&self, step: &Step) -> std::io::Result<Option<Applied>> {
        let n = self.bed.topo.nodes;
        let result: Result<Applied, (Vec<usize>, String)> = match step.fault {
            FaultKind::PartitionHalves => {
                let (a, b) = random_halves(n, step.pick);
                let mut err = None;
                for i in &a {
                    err = err.or(self.bed.isolate(*i, &b).err());
                }
                for i in &b {
                    err = err.or(self.bed.isolate(*i, &a).err());
                }
                let all: Vec<usize> = (1..=n).collect();
                match err {
                    None => Ok(Applied::Partition(a)),
                    Some(e) => {
                        self.bed.heal_network();
                        Err((all, e))
                    }
                }
            }
            leader_fault => match self.bed.leader().await {
                None => Err((Vec::new(), "no leader found".to_string())),
                Some(l) => {
                    let r = match leader_fault {
                        FaultKind::PartitionLeader => {
                            let others: Vec<usize> = (1..=n).filter(|i| *i != l).collect();
                            self.bed.isolate(l, &others).map(|()| Applied::Partition(vec![l]))
                        }
                        FaultKind::KillLeader => self.bed.kill(l).await.map(|()| Applied::Killed(l)),
                        _ => self.bed.pause(l).map(|()| Applied::Paused(l)),
                    };
                    r.map_err(|e| (vec![l], e))
                }
            },
        };
        // The invocation is written after the targets are known, so it can name them; the
        // fault certainly was not in effect before this line, which is all the checker needs.
        let targets = match &result {
            Ok(a) => a.targets(),
            Err((t, _)) => t.clone(),
        };
        let fault = Fault { fault: step.fault.name().into(), action: FaultAction::Start, targets: names(&targets) };
        let inv = self.history.invoke(Process::NEMESIS, Call::Nemesis(fault.clone()))?;
        match result {
            Ok(a) => {
                eprintln!("nemesis: {} start on {:?}", step.fault, fault.targets);
                self.history.ok(inv, Call::Nemesis(fault))?;
                Ok(Some(a))
            }
            Err((_, e)) => {
                eprintln!("nemesis: {} could not start: {e}", step.fault);
                self.history.fail(inv, Call::Nemesis(fault), e)?;
                Ok(None)
            }
        }
    }

    async fn stop(&self, kind: FaultKind, applied: &Applied) -> std::io::Result<()> {
        let fault = Fault { fault: kind.name().into(), action: FaultAction::Stop, targets: names(&applied.targets()) };
        let inv = self.history.invoke(Process::NEMESIS, Call::Nemesis(fault.clone()))?;
        let r = match applied {
            Applied::Partition(_) => {
                self.bed.heal_network();
                Ok(())
            }
            Applied::Killed(i) => self.bed.restart(*i).await,
            Applied::Paused(i) => self.bed.resume(*i),
        };
        match r {
            Ok(()) => {
                eprintln!("nemesis: {kind} healed");
                self.history.ok(inv, Call::Nemesis(fault))
            }
            // Not healed: leave the window open (info) rather than claim it closed.
            Err(e) => {
                eprintln!("nemesis: {kind} could not heal: {e}");
                self.history.info(inv, Call::Nemesis(fault), e)
            }
        }
    }
}

/// How long `play` will take at most: the last step's stop.
pub fn duration(steps: &[Step]) -> Duration {
    steps.last().map(|s| s.stop).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_cover_every_node_once_with_the_smaller_first() {
        for n in 2..=7 {
            for pick in 0..50 {
                let (a, b) = random_halves(n, pick);
                assert_eq!(a.len(), n / 2, "n={n}");
                assert_eq!(a.len() + b.len(), n);
                let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
                all.sort_unstable();
                assert_eq!(all, (1..=n).collect::<Vec<_>>());
            }
        }
        assert_eq!(random_halves(5, 9), random_halves(5, 9), "seeded");
    }
}
