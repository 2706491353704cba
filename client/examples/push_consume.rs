//! A push consumer of topic `sdk-demo` in consumer group `demo-push`: prints
//! each message; fails the first delivery of messages whose body contains
//! "retry", to show a redelivery. Ctrl-C shuts it down cleanly.
//!
//! `cargo run -p raftmq-client --example push_consume [nameserver, default 127.0.0.1:9876]`.

use raftmq_client::push::{ConsumeResult, PushConsumer};
use raftmq_client::{Cluster, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let namesrv = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9876".into());
    let consumer = PushConsumer::builder(Cluster::new(&[namesrv])?, "demo-push", "sdk-demo")
        .concurrency(4)
        .start(|m| {
            let body = String::from_utf8_lossy(&m.body);
            println!("{} attempt {}: {body}", m.message_id, m.delivery_attempt);
            if body.contains("retry") && m.delivery_attempt == 1 {
                ConsumeResult::Failure
            } else {
                ConsumeResult::Success
            }
        })
        .await?;
    println!("consuming; Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    let stats = consumer.shutdown().await;
    println!("received {}, acknowledged {}, failed {}", stats.received, stats.acked, stats.failed);
    Ok(())
}
