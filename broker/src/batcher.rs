//! Coalesces concurrent requests into one Raft entry.
//!
//! At most `max_inflight` proposals of one kind are under way at once;
//! requests that arrive while all are busy wait in a queue and leave together
//! in the next entry (up to the kind's item and byte caps). So there is no
//! added wait when the broker is idle, and under load the per-entry costs
//! (Raft, replication, fsync, apply) are shared by many requests: group commit
//! one level up.
//!
//! Two kinds: producer batches ([`Sends`]: each stays all-or-nothing inside
//! the entry) and pop-state commands ([`Metas`]: receives, acks, changes of
//! invisible time, one `MetaBatch` entry, applied in order).

use prost::Message as _;
use raftmq_proto::broker::{
    CommandReply, MetaBatch, MetaCommand, SendEntryResult, StoredMessage, command_reply, meta_command,
};
use raftmq_proto::coalesce::{self, Caps};
use raftmq_raft::Cmd;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cmd;
use crate::error::ApiError;
use crate::proposer::Proposer;

/// What one kind of request needs to share entries.
pub trait Kind: Send + Sync + 'static {
    /// One caller's request.
    type Req: Send + Sync + 'static;
    /// One caller's answer.
    type Out: Send + 'static;
    const MAX_ITEMS: usize;
    const MAX_BYTES: usize;
    /// (items, bytes) of one request, counted against the caps.
    fn size(req: &Self::Req) -> (usize, usize);
    fn encode(reqs: &[&Self::Req]) -> Cmd;
    /// Splits the entry's reply into one answer per request, in order.
    fn split(reply: CommandReply, reqs: &[&Self::Req]) -> Vec<Result<Self::Out, ApiError>>;
}

/// Producer batches, framed by [`cmd::encode_batches`].
pub struct Sends;

pub const MAX_ENTRY_MESSAGES: usize = 2048;
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

impl Kind for Sends {
    type Req = Vec<StoredMessage>;
    type Out = Vec<SendEntryResult>;
    const MAX_ITEMS: usize = MAX_ENTRY_MESSAGES;
    const MAX_BYTES: usize = MAX_ENTRY_BYTES;

    fn size(req: &Self::Req) -> (usize, usize) {
        (req.len(), req.iter().map(|m| m.encoded_len()).sum())
    }

    fn encode(reqs: &[&Self::Req]) -> Cmd {
        let parts: Vec<&[StoredMessage]> = reqs.iter().map(|r| r.as_slice()).collect();
        cmd::encode_batches(&parts)
    }

    fn split(reply: CommandReply, reqs: &[&Self::Req]) -> Vec<Result<Self::Out, ApiError>> {
        let pick = |r| match r {
            command_reply::Result::Send(r) => Some(r.entries),
            _ => None,
        };
        let answers = deal(reply, reqs.iter().map(|r| r.len()), pick, "a message batch");
        // A refused producer batch has the refusal on each of its messages.
        answers
            .into_iter()
            .map(|a| {
                let mine = a?;
                match mine.iter().find_map(|e| e.error.as_ref()) {
                    Some(e) => Err(ApiError::from_reply(e)),
                    None => Ok(mine),
                }
            })
            .collect()
    }
}

/// Pop-state commands; each request is a list of commands answered in order.
pub struct Metas;

impl Kind for Metas {
    type Req = Vec<MetaCommand>;
    type Out = Vec<CommandReply>;
    const MAX_ITEMS: usize = 1024;
    const MAX_BYTES: usize = 4 * 1024 * 1024;

    fn size(req: &Self::Req) -> (usize, usize) {
        (req.len(), req.iter().map(|m| m.encoded_len()).sum())
    }

    fn encode(reqs: &[&Self::Req]) -> Cmd {
        let cmds = reqs.iter().flat_map(|r| r.iter().cloned()).collect();
        cmd::encode_meta(&MetaCommand { cmd: Some(meta_command::Cmd::Batch(MetaBatch { cmds })) })
    }

    fn split(reply: CommandReply, reqs: &[&Self::Req]) -> Vec<Result<Self::Out, ApiError>> {
        let pick = |r| match r {
            command_reply::Result::Batch(b) => Some(b.replies),
            _ => None,
        };
        deal(reply, reqs.iter().map(|r| r.len()), pick, "a command batch")
    }
}

/// Deals an entry's per-item results out to requests of `counts` items each,
/// in order; an error reply for the whole entry goes to every request.
fn deal<T>(
    reply: CommandReply,
    counts: impl ExactSizeIterator<Item = usize>,
    pick: impl FnOnce(command_reply::Result) -> Option<Vec<T>>,
    what: &str,
) -> Vec<Result<Vec<T>, ApiError>> {
    let n = counts.len();
    let items = match reply.result {
        Some(command_reply::Result::Error(e)) => return (0..n).map(|_| Err(ApiError::from_reply(&e))).collect(),
        Some(r) => pick(r),
        None => None,
    };
    let Some(items) = items else { return all_failed(n, &format!("unexpected reply to {what}")) };
    let mut items = items.into_iter();
    counts
        .map(|count| {
            let mine: Vec<T> = items.by_ref().take(count).collect();
            if mine.len() == count {
                Ok(mine)
            } else {
                Err(ApiError::internal(format!("the state machine answered {what} with too few results")))
            }
        })
        .collect()
}

fn all_failed<T>(n: usize, why: &str) -> Vec<Result<T, ApiError>> {
    (0..n).map(|_| Err(ApiError::internal(why))).collect()
}

struct Pending<K: Kind> {
    req: K::Req,
    items: usize,
    bytes: usize,
    deadline: Instant,
    reply: oneshot::Sender<Result<K::Out, ApiError>>,
}

pub struct Batcher<K: Kind> {
    tx: mpsc::UnboundedSender<Pending<K>>,
}

impl<K: Kind> Clone for Batcher<K> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

pub type SendBatcher = Batcher<Sends>;
pub type MetaBatcher = Batcher<Metas>;

impl<K: Kind> Batcher<K> {
    pub fn start(proposer: Proposer, max_inflight: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let caps = Caps { max_inflight, max_items: K::MAX_ITEMS, max_bytes: K::MAX_BYTES };
        tokio::spawn(coalesce::run(
            rx,
            caps,
            |p: &Pending<K>| (p.items, p.bytes),
            move |batch| {
                let proposer = proposer.clone();
                async move { propose::<K>(&proposer, batch).await }
            },
        ));
        Self { tx }
    }

    /// Proposes one request in a shared entry; answers once it is applied.
    pub async fn submit(&self, req: K::Req, deadline: Instant) -> Result<K::Out, ApiError> {
        let (items, bytes) = K::size(&req);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { req, items, bytes, deadline, reply })
            .map_err(|_| ApiError::internal("the batcher stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the batcher dropped a request"))?
    }
}

async fn propose<K: Kind>(proposer: &Proposer, batch: Vec<Pending<K>>) {
    let deadline = batch.iter().map(|p| p.deadline).max().unwrap_or_else(Instant::now);
    let reqs: Vec<&K::Req> = batch.iter().map(|p| &p.req).collect();
    let cmd = K::encode(&reqs);
    let answers = match proposer.propose(cmd, deadline).await {
        Ok(reply) => K::split(reply, &reqs),
        Err(e) => reqs.iter().map(|_| Err(e.clone())).collect(),
    };
    for (p, answer) in batch.into_iter().zip(answers) {
        let _ = p.reply.send(answer);
    }
}
