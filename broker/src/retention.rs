//! Retention on a running replica: the leader decides what has expired, every
//! replica then purges.
//!
//! - [`decide`] (leader only, every second): the newest pin whose leader stamp
//!   is older than `retention_ms` (or, with a byte cap, the newest pin that
//!   still leaves at least `retention_bytes` after it) becomes the boundary. It never passes a delayed
//!   message that still waits. The leader reads each queue's first retained
//!   offset and proposes `Retain{index, position, firsts}`.
//! - [`purge`] (every replica, after each applied `Retain`): once a durable
//!   checkpoint covers the `Retain` entry (so a restart never needs a purged
//!   entry), trim the consume queues and the index, have openraft take the
//!   pin as its snapshot, and purge the log up to the pin. Pins behind it go.
//!
//! Pins are local: a replica purges up to its own newest pin at or before the
//! boundary, so replicas may purge at different points; each keeps every entry
//! after its own snapshot.

use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::broker::{MetaCommand, QueueFirst, Retain, meta_command};
use raftmq_raft::Raft;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::cmd;
use crate::proposer::Proposer;
use crate::sm::pins::PinInfo;
use crate::sm::{BrokerStateMachine, Shared};

/// How often the leader looks for expired pins.
const TICK: Duration = Duration::from_secs(1);
/// How often a replica retries a purge that did not reach its pin.
const RETRY: Duration = Duration::from_secs(2);
/// Units read per consume-queue read while looking for a queue's first retained offset.
const SCAN_UNITS: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retention_ms: u64,
    /// 0: no cap.
    pub retention_bytes: u64,
}

/// What the log looks like to the leader's decision.
#[derive(Debug, Clone, Copy)]
pub struct LogView {
    pub now_ms: i64,
    /// The last applied `Retain`'s boundary, or the last pop applied without a
    /// plan if later: a replica that installs a pin must not meet one after it.
    pub retained_index: u64,
    /// First and end CommitLog positions.
    pub start: u64,
    pub end: u64,
    /// The lowest position of a delayed message still waiting.
    pub delayed_min: Option<u64>,
}

/// The pin that becomes the new retention boundary, if any.
pub fn decide(pins: &[PinInfo], log: LogView, policy: Policy) -> Option<PinInfo> {
    let eligible: Vec<&PinInfo> = pins
        .iter()
        .filter(|p| p.index > log.retained_index && log.delayed_min.is_none_or(|d| p.next_position <= d))
        .collect();
    let cutoff = log.now_ms.saturating_sub(i64::try_from(policy.retention_ms).unwrap_or(i64::MAX));
    let by_age = eligible.iter().rev().find(|p| p.stamp_ms <= cutoff).copied();
    // The newest `retention_bytes` always stay: pins are coarse, and cutting
    // at the first pin under the cap could take young messages with it.
    let by_size = (policy.retention_bytes > 0 && log.end.saturating_sub(log.start) > policy.retention_bytes)
        .then(|| eligible.iter().rev().find(|p| log.end.saturating_sub(p.next_position) >= policy.retention_bytes))
        .flatten()
        .copied();
    by_age.into_iter().chain(by_size).max_by_key(|p| p.index).copied()
}

/// Each queue's first offset whose unit lies at or past `position` (the
/// leader reads them so applying the `Retain` reads no units). A unit further
/// on that points before `position` (a fired delayed message, a dead letter)
/// stays in its queue; its record is gone, and reading it finds it expired.
fn firsts(shared: &Shared, position: u64) -> Result<Vec<QueueFirst>, String> {
    let (topics, retained) = {
        let meta = shared.meta();
        (meta.topics.keys().cloned().collect::<std::collections::BTreeSet<_>>(), meta.retained.clone())
    };
    let mut out = Vec::new();
    for (topic, queue_id) in shared.cq.queues() {
        if !topics.contains(&topic) {
            continue;
        }
        let from = shared.first_offset(&topic, queue_id);
        let mut offset = from;
        loop {
            let units = shared.cq.read(&topic, queue_id, offset, SCAN_UNITS).map_err(|e| e.to_string())?;
            let Some((last, _)) = units.last() else { break };
            match units.iter().find(|(_, u)| u.position >= position) {
                Some((o, _)) => {
                    offset = *o;
                    break;
                }
                None => offset = last + 1,
            }
        }
        if offset > retained.first(&topic, queue_id) {
            out.push(QueueFirst { topic, queue_id, offset });
        }
    }
    Ok(out)
}

/// The leader's side: proposes a `Retain` when a pin has expired.
pub async fn decide_loop(shared: Arc<Shared>, proposer: Proposer, policy: Policy, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        if !proposer.is_leader() {
            continue;
        }
        let view = {
            let meta = shared.meta();
            LogView {
                now_ms: now_ms(),
                retained_index: meta.retained.index.max(meta.last_unplanned_pop),
                // Bytes before the last boundary are as good as gone (only
                // whole segments are purged).
                start: shared.log.start_position().max(meta.retained.position),
                end: shared.log.end_position(),
                delayed_min: None,
            }
        };
        // The waiting delayed messages are scanned only once a pin has expired
        // (rarely), not every tick: there can be millions of them.
        let pins = shared.pins.all();
        if decide(&pins, view, policy).is_none() {
            continue;
        }
        let view = LogView { delayed_min: shared.meta().delays.min_position(), ..view };
        let Some(pin) = decide(&pins, view, policy) else { continue };
        let firsts = match firsts(&shared, pin.next_position) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("retention: reading the consume queues failed: {e}");
                continue;
            }
        };
        let retain = Retain { index: pin.index, position: pin.next_position, firsts, applied_at: 0 };
        let cmd = cmd::encode_meta(&MetaCommand { cmd: Some(meta_command::Cmd::Retain(retain)) });
        tracing::info!(
            pin = pin.index,
            position = pin.next_position,
            "retention: proposing the expiry of the log before the pin"
        );
        if let Err(e) = proposer.propose_local(cmd, Instant::now() + Duration::from_secs(5)).await {
            tracing::warn!("retention: proposing Retain failed: {e}");
        }
    }
}

/// Every replica's side: purges after each applied `Retain`.
pub async fn purge_loop(shared: Arc<Shared>, raft: Raft<BrokerStateMachine>, mut stop: watch::Receiver<bool>) {
    let mut retained = shared.subscribe_retained();
    let mut durable = shared.subscribe_durable();
    // The `Retain` (by its entry's index) whose purge is complete.
    let mut done = 0;
    loop {
        // Once at start too: a restart may come between a Retain and its purge.
        if let Err(e) = purge(&shared, &raft, &mut durable, &mut stop, &mut done).await {
            tracing::warn!("retention: purging failed (retried in {RETRY:?}): {e}");
        }
        // A purge openraft deferred (replication still reading the entries)
        // or one that failed is tried again on a timer.
        tokio::select! {
            _ = stop.changed() => return,
            r = retained.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn purge(
    shared: &Shared,
    raft: &Raft<BrokerStateMachine>,
    durable: &mut watch::Receiver<u64>,
    stop: &mut watch::Receiver<bool>,
    done: &mut u64,
) -> Result<(), String> {
    let r = {
        let meta = shared.meta();
        if meta.retained.index == 0 || meta.retained.applied_at == *done {
            return Ok(());
        }
        meta.retained.clone()
    };
    // A restart loads the latest checkpoint and re-applies the log after it,
    // so nothing after that checkpoint may go (I36).
    tokio::select! {
        _ = stop.changed() => return Ok(()),
        d = durable.wait_for(|d| *d >= r.applied_at) => { d.map_err(|e| e.to_string())?; }
    }
    for (topic, queue_id) in shared.cq.queues() {
        shared.cq.trim_below(&topic, queue_id, r.first(&topic, queue_id)).map_err(|e| e.to_string())?;
    }
    shared.index.remove_below(r.position).map_err(|e| e.to_string())?;
    let Some(pin) = shared.pins.at_or_before(r.index) else {
        return Err(format!("no pinned checkpoint at or before the boundary {}: the log stays", r.index));
    };
    if shared.log.last_purged().is_some_and(|p| p.index >= pin.index) {
        *done = r.applied_at;
        return Ok(());
    }
    raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
    let wait = || raft.wait(Some(Duration::from_secs(10)));
    wait()
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= pin.index), "the pin becomes openraft's snapshot")
        .await
        .map_err(|e| format!("openraft did not take the pin at {}: {e}", pin.index))?;
    raft.trigger().purge_log(pin.index).await.map_err(|e| e.to_string())?;
    // openraft purges once no replication still reads those entries.
    wait()
        .metrics(|m| m.purged.is_some_and(|p| p.index >= pin.index), "the log is purged up to the pin")
        .await
        .map_err(|e| format!("the log was not purged up to {}: {e}", pin.index))?;
    shared.pins.remove_before(pin.index).map_err(|e| e.to_string())?;
    *done = r.applied_at;
    tracing::info!(pin = pin.index, "retention: log purged up to the pin");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(index: u64, next_position: u64, stamp_ms: i64) -> PinInfo {
        PinInfo { index, term: 1, next_position, stamp_ms }
    }

    fn view(now_ms: i64) -> LogView {
        LogView { now_ms, retained_index: 0, start: 0, end: 10_000, delayed_min: None }
    }

    const AGE: Policy = Policy { retention_ms: 1_000, retention_bytes: 0 };

    #[test]
    fn the_newest_expired_pin_becomes_the_boundary() {
        let pins = [pin(10, 1_000, 100), pin(20, 2_000, 500), pin(30, 3_000, 900)];
        assert_eq!(decide(&pins, view(1_050), AGE), None, "nothing is a second old");
        assert_eq!(decide(&pins, view(1_600), AGE).map(|p| p.index), Some(20));
        let done = LogView { retained_index: 20, ..view(1_600) };
        assert_eq!(decide(&pins, done, AGE), None, "already retained");
    }

    #[test]
    fn a_waiting_delayed_message_holds_retention_back() {
        let pins = [pin(10, 1_000, 100), pin(20, 2_000, 200)];
        let v = LogView { delayed_min: Some(1_500), ..view(5_000) };
        assert_eq!(decide(&pins, v, AGE).map(|p| p.index), Some(10));
        let v = LogView { delayed_min: Some(999), ..view(5_000) };
        assert_eq!(decide(&pins, v, AGE), None);
    }

    #[test]
    fn a_byte_cap_purges_young_messages_too_but_keeps_the_newest_bytes() {
        let pins = [pin(10, 1_000, 100), pin(20, 6_000, 200), pin(30, 8_000, 300)];
        let cap = Policy { retention_ms: 1_000_000, retention_bytes: 5_000 };
        assert_eq!(decide(&pins, view(400), cap).map(|p| p.index), Some(10), "at least 5000 bytes stay");
        let small = Policy { retention_ms: 1_000_000, retention_bytes: 100 };
        assert_eq!(decide(&pins, view(400), small).map(|p| p.index), Some(30), "as far as the pins go");
        let under = LogView { end: 4_000, ..view(400) };
        assert_eq!(decide(&pins, under, cap), None);
    }
}
