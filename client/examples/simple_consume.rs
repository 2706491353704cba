//! Receives from topic `sdk-demo` as consumer group `demo-simple` and
//! acknowledges each message, until nothing arrives for 5 s.
//!
//! `cargo run -p raftmq-client --example simple_consume [nameserver, default 127.0.0.1:9876]`.

use std::time::Duration;

use raftmq_client::{Cluster, Error, SimpleConsumer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let namesrv = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9876".into());
    let consumer = SimpleConsumer::new(Cluster::new(&[namesrv])?, "demo-simple", "sdk-demo")
        .with_invisible(Duration::from_secs(30))
        .with_tag_filter("*");
    loop {
        let batch = consumer.receive(16, Duration::from_secs(5)).await?;
        if batch.is_empty() {
            println!("no message for 5 s, done");
            return Ok(());
        }
        for m in &batch {
            println!(
                "{} attempt {} {:?}: {}",
                m.message_id,
                m.delivery_attempt,
                m.tag,
                String::from_utf8_lossy(&m.body)
            );
        }
        for (m, r) in batch.iter().zip(consumer.ack_all(&batch).await?) {
            if let Err(e) = r {
                println!("ack of {} failed (it will come again): {e}", m.message_id);
            }
        }
    }
}
