//! The client workload: every replica runs a producer that sends unique values through its
//! local `Proposer` (forwarded to the leader when it is a follower, exactly as SendMessage
//! does) and records what it was told. Queue choice and pacing come from a seeded RNG.

use std::sync::Arc;
use std::time::Duration;

use raftmq_broker::cmd;
use raftmq_broker::proposer::Proposer;
use raftmq_proto::broker::command_reply::Result as Reply;
use raftmq_proto::broker::meta_command::Cmd as MetaCmd;
use raftmq_proto::broker::{MetaCommand, StoredMessage, TopicConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::world::{Outcome, QUEUES, TOPIC, World};

const SEND_DEADLINE: Duration = Duration::from_secs(3);

pub async fn produce(world: Arc<World>, id: u64, boot: u32, proposer: Proposer) {
    let mut rng = StdRng::seed_from_u64(world.boot_seed(id, boot));
    ensure_topic(&proposer).await;
    let mut seq = 0u64;
    while world.producing() {
        let value = format!("v{id}.{boot}.{seq}");
        seq += 1;
        let queue = rng.random_range(0..QUEUES);
        let msg = StoredMessage {
            topic: TOPIC.into(),
            queue_id: queue,
            message_id: value.clone(),
            body: value.clone().into_bytes().into(),
            message_type: 1,
            store_timestamp_ms: 1,
            ..Default::default()
        };
        world.history().sent.insert(value.clone(), Outcome::Pending);
        let outcome = match proposer.propose(cmd::encode_batch(&[msg]), Instant::now() + SEND_DEADLINE).await {
            Ok(reply) => match reply.result {
                Some(Reply::Send(s)) => match s.entries.first() {
                    Some(e) if e.error.is_none() && e.queue_id == queue => Outcome::Acked(e.queue_id, e.queue_offset),
                    Some(e) if e.error.is_some() => Outcome::Refused,
                    other => panic!("send of {value} answered with {other:?}"),
                },
                Some(Reply::Error(_)) => Outcome::Refused,
                other => panic!("send of {value} answered with {other:?}"),
            },
            Err(_) => Outcome::Unknown,
        };
        world.history().sent.insert(value, outcome);
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
}

/// Creates the topic; a second create is refused, which is as good.
async fn ensure_topic(proposer: &Proposer) {
    let topic = TopicConfig { name: TOPIC.into(), queue_count: QUEUES as u32, ..Default::default() };
    let create = MetaCommand { cmd: Some(MetaCmd::CreateTopic(raftmq_broker::topic::with_defaults(topic))) };
    loop {
        match proposer.propose(cmd::encode_meta(&create), Instant::now() + SEND_DEADLINE).await {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
