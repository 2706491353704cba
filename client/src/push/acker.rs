//! Acknowledgements leave in batches: every ack is a Raft entry (an fsync on a
//! quorum in sync mode), so one entry per message would cap a push consumer
//! at the broker's proposal rate. One task sends one AckMessage request at a
//! time per batch of messages of one broker group; the acks that arrive while
//! a request is under way leave together in the next one, so an idle
//! consumer acks at once and a busy one in large batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::consumer::ReceivedMessage;
use crate::error::Error;

/// Most messages in one AckMessage request.
const MAX_BATCH: usize = 256;

pub(crate) struct AckRequest {
    pub(crate) message: ReceivedMessage,
    pub(crate) done: oneshot::Sender<Result<(), Error>>,
}

/// Acks until every sender of `requests` is gone.
pub(crate) async fn run(shared: Arc<Shared>, mut requests: mpsc::UnboundedReceiver<AckRequest>) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(r) = requests.try_recv()
        {
            batch.push(r);
        }
        // ack_all takes one broker group's messages of one topic.
        let mut by_group: BTreeMap<String, Vec<AckRequest>> = BTreeMap::new();
        for r in batch {
            by_group.entry(r.message.broker_group.clone()).or_default().push(r);
        }
        for (_, reqs) in by_group {
            let msgs: Vec<ReceivedMessage> = reqs.iter().map(|r| r.message.clone()).collect();
            shared.stats.ack_requests.fetch_add(1, Ordering::Relaxed);
            match shared.consumer.ack_all(&msgs).await {
                Ok(results) => {
                    for (r, result) in reqs.into_iter().zip(results) {
                        let _ = r.done.send(result);
                    }
                }
                Err(e) => {
                    for r in reqs {
                        let _ = r.done.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
