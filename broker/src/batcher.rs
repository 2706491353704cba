//! Coalesces concurrent sends into one Raft entry.
//!
//! At most `max_inflight` proposals are under way at once; requests that arrive
//! while all are busy wait in a queue and leave together in the next entry
//! (up to [`MAX_ENTRY_MESSAGES`] / [`MAX_ENTRY_BYTES`]). So there is no added
//! wait when the broker is idle, and under load the per-entry costs (Raft,
//! replication, fsync, apply) are shared by many messages: group commit one
//! level up. Each producer batch stays all-or-nothing inside the entry.

use std::sync::Arc;

use prost::Message as _;
use raftmq_proto::broker::{SendEntryResult, StoredMessage, command_reply};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::cmd;
use crate::error::ApiError;
use crate::proposer::Proposer;

pub const MAX_ENTRY_MESSAGES: usize = 2048;
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

type Reply = Result<Vec<SendEntryResult>, ApiError>;

struct Pending {
    msgs: Vec<StoredMessage>,
    bytes: usize,
    deadline: Instant,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct SendBatcher {
    tx: mpsc::UnboundedSender<Pending>,
}

impl SendBatcher {
    pub fn start(proposer: Proposer, max_inflight: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(proposer, rx, Arc::new(Semaphore::new(max_inflight.max(1)))));
        Self { tx }
    }

    /// Proposes one producer batch; answers one result per message, in order.
    pub async fn send(&self, msgs: Vec<StoredMessage>, deadline: Instant) -> Reply {
        let bytes = msgs.iter().map(|m| m.encoded_len()).sum();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { msgs, bytes, deadline, reply })
            .map_err(|_| ApiError::internal("the send batcher stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the send batcher dropped a request"))?
    }
}

async fn run(proposer: Proposer, mut rx: mpsc::UnboundedReceiver<Pending>, slots: Arc<Semaphore>) {
    let mut carry: Option<Pending> = None;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let (mut count, mut bytes) = (first.msgs.len(), first.bytes);
        let mut batch = vec![first];
        while count < MAX_ENTRY_MESSAGES && bytes < MAX_ENTRY_BYTES {
            match rx.try_recv() {
                Ok(p) if count + p.msgs.len() <= MAX_ENTRY_MESSAGES && bytes + p.bytes <= MAX_ENTRY_BYTES => {
                    count += p.msgs.len();
                    bytes += p.bytes;
                    batch.push(p);
                }
                Ok(p) => {
                    carry = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        let proposer = proposer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            propose(&proposer, batch).await;
        });
    }
}

async fn propose(proposer: &Proposer, batch: Vec<Pending>) {
    let deadline = batch.iter().map(|p| p.deadline).max().unwrap_or_else(Instant::now);
    let cmd = {
        let parts: Vec<&[StoredMessage]> = batch.iter().map(|p| p.msgs.as_slice()).collect();
        cmd::encode_batches(&parts)
    };
    let result = proposer.propose(cmd, deadline).await;
    let mut entries = match result {
        Ok(reply) => match reply.result {
            Some(command_reply::Result::Send(r)) => r.entries.into_iter(),
            Some(command_reply::Result::Error(e)) => return fail_all(batch, ApiError::from_reply(&e)),
            _ => return fail_all(batch, ApiError::internal("unexpected reply to a message batch")),
        },
        Err(e) => return fail_all(batch, e),
    };
    for p in batch {
        let mine: Vec<SendEntryResult> = entries.by_ref().take(p.msgs.len()).collect();
        let answer = if mine.len() != p.msgs.len() {
            Err(ApiError::internal("the state machine answered fewer results than messages"))
        } else if let Some(e) = mine.iter().find_map(|e| e.error.as_ref()) {
            Err(ApiError::from_reply(e))
        } else {
            Ok(mine)
        };
        let _ = p.reply.send(answer);
    }
}

fn fail_all(batch: Vec<Pending>, e: ApiError) {
    for p in batch {
        let _ = p.reply.send(Err(e.clone()));
    }
}
