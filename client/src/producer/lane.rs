//! A topic's lane: concurrent single sends share SendMessage calls.
//!
//! At most `calls` calls of a lane are under way at once. Sends that arrive
//! while all are busy wait in the lane and leave together in the next call
//! (up to [`MAX_MESSAGES`] and [`MAX_BYTES`]), so an idle producer adds no
//! wait, and under load the cost of a call is shared, as the broker shares a
//! Raft entry between calls. Each message keeps its own id and answer.
//!
//! A shared call is stored all or nothing. If the broker refuses one for good
//! (a bad message, say), its messages are sent again one by one, so that one
//! bad message fails only its own send; nothing of a refused call was stored,
//! and each keeps its id, so the broker's idempotent-send window would answer
//! a repeat with the original position anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use raftmq_proto::coalesce::{self, Caps};
use tokio::sync::{mpsc, oneshot};

use super::{Core, Message, Placement, SendReceipt, only};
use crate::error::Error;

/// Messages per shared call at most.
pub(super) const MAX_MESSAGES: usize = 256;
/// Body bytes per shared call at most (a larger message travels alone): well
/// under the broker's request limit (its maximum body size plus 1 MiB).
pub(super) const MAX_BYTES: usize = 1 << 20;

struct Pending {
    msg: Message,
    id: String,
    reply: oneshot::Sender<Result<SendReceipt, Error>>,
}

/// The sending end of one topic's lane; its task ends when this is dropped.
pub(super) struct Lane {
    tx: mpsc::UnboundedSender<Pending>,
}

/// Sends `msg` through its topic's lane, starting the lane if needed.
pub(super) async fn submit(
    lanes: &Mutex<HashMap<String, Lane>>,
    core: &Arc<Core>,
    calls: usize,
    msg: Message,
    id: String,
) -> Result<SendReceipt, Error> {
    let (reply, rx) = oneshot::channel();
    let pending = Pending { msg, id, reply };
    {
        let mut lanes = lanes.lock().unwrap_or_else(|p| p.into_inner());
        let unsent = match lanes.get(&pending.msg.topic) {
            Some(lane) => lane.tx.send(pending).err().map(|e| e.0),
            None => Some(pending),
        };
        // No lane yet, or its task is gone (its runtime shut down): a new one.
        if let Some(p) = unsent {
            let (tx, lane_rx) = mpsc::unbounded_channel();
            tokio::spawn(run(core.clone(), lane_rx, calls));
            let topic = p.msg.topic.clone();
            let _ = tx.send(p);
            lanes.insert(topic, Lane { tx });
        }
    }
    answer(rx).await
}

async fn answer(rx: oneshot::Receiver<Result<SendReceipt, Error>>) -> Result<SendReceipt, Error> {
    rx.await.map_err(|_| Error::Transport {
        endpoint: "producer".into(),
        message: "the send was dropped before it was answered (runtime shutting down?)".into(),
    })?
}

async fn run(core: Arc<Core>, rx: mpsc::UnboundedReceiver<Pending>, calls: usize) {
    let caps = Caps { max_inflight: calls, max_items: MAX_MESSAGES, max_bytes: MAX_BYTES };
    coalesce::run(
        rx,
        caps,
        |p: &Pending| (1, p.msg.body.len()),
        move |call| {
            let core = core.clone();
            async move { send_shared(&core, call).await }
        },
    )
    .await
}

async fn send_shared(core: &Core, call: Vec<Pending>) {
    let (msgs, rest): (Vec<Message>, Vec<(String, oneshot::Sender<_>)>) =
        call.into_iter().map(|p| (p.msg, (p.id, p.reply))).unzip();
    let (ids, replies): (Vec<String>, Vec<_>) = rest.into_iter().unzip();
    match core.send_messages(&msgs, &ids, Placement::Spread).await {
        Ok(receipts) => {
            for (reply, r) in replies.into_iter().zip(receipts) {
                let _ = reply.send(Ok(r));
            }
        }
        // A broker's refusal may concern one message only; anything else (no route, say)
        // concerns the whole call and is answered as it is, without one call per message.
        Err(e @ Error::Broker { .. }) if msgs.len() > 1 && !e.is_retriable() => {
            let alone = msgs.iter().zip(&ids).map(|(m, id)| async move {
                only(core.send_messages(std::slice::from_ref(m), std::slice::from_ref(id), Placement::Spread).await?)
            });
            for (reply, r) in replies.into_iter().zip(futures::future::join_all(alone).await) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
