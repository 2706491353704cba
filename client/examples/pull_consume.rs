//! Reads every queue of topic `sdk-demo` as consumer group `demo-pull`, from
//! the group's committed offsets (or the beginning), committing after each
//! poll; stops when nothing arrives for 3 s. Run it twice: the second run
//! starts where the first stopped.
//!
//! `cargo run -p raftmq-client --example pull_consume [nameserver, default 127.0.0.1:9876]`.

use std::time::Duration;

use raftmq_client::pull::PullConsumer;
use raftmq_client::{Cluster, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let namesrv = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9876".into());
    let mut consumer = PullConsumer::builder(Cluster::new(&[namesrv])?, "demo-pull", "sdk-demo").start().await?;
    for q in consumer.queues() {
        println!("{q} starts at offset {:?}", consumer.position(q));
    }
    loop {
        let batch = consumer.poll(32, Duration::from_secs(3)).await?;
        if batch.is_empty() {
            println!("no message for 3 s, done");
            return Ok(());
        }
        for m in &batch {
            println!("{} offset {}: {}", m.queue, m.message.offset, String::from_utf8_lossy(&m.message.body));
        }
        consumer.commit().await?;
    }
}
