//! The leader's timer for delayed messages: when the earliest delayed message
//! is due, it proposes `FireDelayed{now}` and the state machine moves every
//! message due by then into its queue (sm/delay.rs). Only the leader fires; a
//! new leader picks up whatever is due from the replicated state, so a
//! failover delays a message by at most the election.

use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::broker::{FireDelayed, MetaCommand, meta_command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::cmd;
use crate::proposer::Proposer;
use crate::sm::Shared;

/// How often the timer looks at the earliest due time (and the most a
/// message is late on a healthy leader, plus one commit).
const TICK: Duration = Duration::from_millis(100);

pub async fn run(shared: Arc<Shared>, proposer: Proposer, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let due = shared.meta().delays.next_due().is_some_and(|d| d <= now_ms());
        if !due || !proposer.is_leader() {
            continue;
        }
        let fire = MetaCommand { cmd: Some(meta_command::Cmd::FireDelayed(FireDelayed { now_ms: now_ms() })) };
        if let Err(e) = proposer.propose_local(cmd::encode_meta(&fire), Instant::now() + Duration::from_secs(3)).await {
            tracing::warn!("firing delayed messages failed: {e}");
        }
    }
}
