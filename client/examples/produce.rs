//! Sends ten messages to topic `sdk-demo` (created on the first run), the last three
//! in one message group so they keep their order, then one fire-and-forget.
//!
//! `cargo run --release -- dev` in one terminal, then
//! `cargo run -p raftmq-client --example produce [nameserver, default 127.0.0.1:9876]`.

use std::sync::Arc;

use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Error, MessageType, Producer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let namesrv = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9876".into());
    let cluster = Cluster::new(&[namesrv])?;
    if cluster.route("sdk-demo").await.is_err() {
        // Accepts FIFO messages too: those with a message group.
        cluster.create_topic_accepting("sdk-demo", 4, &[MessageType::Normal, MessageType::Fifo], &[]).await?;
    }
    let producer = Arc::new(Producer::new(cluster));
    for i in 0..7 {
        let r = producer.send(Message::new("sdk-demo", format!("hello {i}")).with_tag("greeting")).await?;
        println!("sent {} to {}:{} at offset {}", r.message_id, r.group, r.queue_id, r.offset);
    }
    for step in ["created", "paid", "shipped"] {
        // Sent one after another: the broker stores them in this order on one queue.
        let r = producer.send(Message::new("sdk-demo", step).with_tag("order").with_message_group("order-42")).await?;
        println!("order-42 {step}: {} at offset {}", r.message_id, r.offset);
    }
    producer.send_oneway(Message::new("sdk-demo", "fire and forget"));
    // A one-way send runs on its own task; give it the moment it needs
    // before the runtime (and the task) ends.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    Ok(())
}
