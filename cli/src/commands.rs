//! The cluster-facing subcommands.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use raftmq_broker::config::DurabilityMode;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, MessageType, Producer, QueueReader};

use crate::devcluster::{DevCluster, DevClusterSpec, group_name};

pub async fn dev(
    groups: usize,
    replicas: usize,
    data_dir: PathBuf,
    namesrv_port: u16,
    base_port: u16,
    durability: &str,
) -> Result<(), String> {
    if groups == 0 || groups > 8 || replicas == 0 || replicas > 9 {
        return Err("--groups must be 1..=8 and --replicas 1..=9".into());
    }
    let durability = if durability == "async" { DurabilityMode::Async } else { DurabilityMode::Sync };
    let spec = DevClusterSpec { groups, replicas, data_dir: data_dir.clone(), namesrv_port, base_port, durability };
    let cluster = DevCluster::start(&spec).await?;
    cluster.wait_for_leaders(Duration::from_secs(10)).await?;
    println!("raftmq dev cluster is up (data in {}, durability {durability:?})", data_dir.display());
    println!("  nameserver      {}", cluster.namesrv_addr);
    for (g, nodes) in cluster.nodes.iter().enumerate() {
        let leader = cluster.leader_of(g).map(|r| r + 1);
        for (r, n) in nodes.iter().enumerate() {
            if let Some(n) = n {
                let mark = if leader == Some(r + 1) { " (leader)" } else { "" };
                println!("  {} node {}    {}{mark}", group_name(g), r + 1, n.addr);
            }
        }
    }
    println!("Every broker address serves the RocketMQ 5 gRPC API. Try:");
    println!("  cargo run --release -- topic create demo --queues 4");
    println!("  cargo run --release -- send --topic demo --count 1000");
    println!("  cargo run --release -- read --topic demo --group broker-a --queue 0");
    println!("Ctrl-C stops the cluster.");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping...");
    cluster.shutdown().await;
    Ok(())
}

#[derive(Subcommand)]
pub enum TopicCmd {
    /// Create a topic with N queues on each chosen broker group (default: all).
    Create {
        name: String,
        #[arg(long, default_value_t = 4)]
        queues: u32,
        /// Broker groups to create it on (repeatable); default all.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Also accept FIFO messages (those with a message group).
        #[arg(long)]
        fifo: bool,
        /// Also accept delayed messages (those with a delivery time).
        #[arg(long)]
        delay: bool,
    },
    /// Show which groups serve a topic and where their leaders are.
    Route { name: String },
}

#[derive(Subcommand)]
pub enum ConsumerGroupCmd {
    /// Create a consumer group on each chosen broker group (default: all).
    Create {
        name: String,
        /// Orderly: one delivery batch in flight per queue, in offset order.
        #[arg(long)]
        fifo: bool,
        /// Deliveries before the dead-letter queue (0: the broker's default, 17).
        #[arg(long, default_value_t = 0)]
        max_attempts: i32,
        /// Broker groups to create it on (repeatable); default all.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

pub async fn consumer_group(cmd: ConsumerGroupCmd, namesrv: &str) -> Result<(), String> {
    let c = cluster(namesrv)?;
    match cmd {
        ConsumerGroupCmd::Create { name, fifo, max_attempts, groups } => {
            c.create_consumer_group(&name, fifo, max_attempts, &groups).await.map_err(|e| e.to_string())?;
            let kind = if fifo { "orderly" } else { "concurrent" };
            println!("created {kind} consumer group '{name}'");
        }
    }
    Ok(())
}

fn cluster(namesrv: &str) -> Result<Cluster, String> {
    Cluster::new(&[namesrv.to_string()]).map_err(|e| e.to_string())
}

pub async fn topic(cmd: TopicCmd, namesrv: &str) -> Result<(), String> {
    let c = cluster(namesrv)?;
    match cmd {
        TopicCmd::Create { name, queues, groups, fifo, delay } => {
            let mut types = vec![MessageType::Normal];
            types.extend(fifo.then_some(MessageType::Fifo));
            types.extend(delay.then_some(MessageType::Delay));
            c.create_topic_accepting(&name, queues, &types, &groups).await.map_err(|e| e.to_string())?;
            println!("created topic '{name}' with {queues} queues per group");
        }
        TopicCmd::Route { name } => {
            let r = c.route(&name).await.map_err(|e| e.to_string())?;
            println!("{:<12} {:>6}  {:<22} replicas", "group", "queues", "leader");
            for g in r.groups {
                let nodes: Vec<String> = g.nodes.iter().map(|n| format!("{}@{}", n.node_id, n.addr)).collect();
                let q = g.topic.map(|t| t.queue_count).unwrap_or(0);
                println!("{:<12} {:>6}  {:<22} {}", g.group, q, g.leader_addr, nodes.join(" "));
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct SendArgs {
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Body size in bytes (ignored with --body).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long)]
    body: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    /// Sends in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
}

pub async fn send(a: SendArgs) -> Result<(), String> {
    let producer = std::sync::Arc::new(Producer::new(cluster(&a.namesrv)?));
    let body = a.body.clone().map(bytes::Bytes::from).unwrap_or_else(|| bytes::Bytes::from(vec![b'x'; a.size]));
    // A bar only for runs long enough to watch; a short one prints its summary.
    let bar = if a.count >= 100 { ProgressBar::new(a.count) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} sent  {per_sec}  eta {eta}").map_err(|e| e.to_string())?,
    );
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let workers = (0..a.concurrency.max(1)).map(|_| {
        let (producer, next, bar, body, topic, tag) =
            (producer.clone(), next.clone(), bar.clone(), body.clone(), a.topic.clone(), a.tag.clone());
        let count = a.count;
        tokio::spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new(3).ok();
            let mut errors = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let mut m = Message::new(topic.clone(), body.clone());
                m.tag = tag.clone();
                let t = Instant::now();
                match producer.send(m).await {
                    Ok(_) => {
                        if let Some(h) = hist.as_mut() {
                            let _ = h.record(t.elapsed().as_micros() as u64);
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                bar.inc(1);
            }
            (hist, errors)
        })
    });
    let results = futures::future::join_all(workers).await;
    bar.finish();
    let elapsed = start.elapsed();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    for r in results {
        let (h, e) = r.map_err(|e| e.to_string())?;
        if let Some(h) = h {
            hist.add(h).map_err(|e| e.to_string())?;
        }
        errors.extend(e);
    }
    println!("{:<10} {:>10} {:>10} {:>9} {:>9} {:>9}", "sent", "failed", "msgs/s", "p50 µs", "p99 µs", "p99.9 µs");
    println!(
        "{:<10} {:>10} {:>10.0} {:>9} {:>9} {:>9}",
        hist.len(),
        errors.len(),
        hist.len() as f64 / elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999)
    );
    if let Some(e) = errors.first() {
        return Err(format!("{} sends failed; first error: {e}", errors.len()));
    }
    Ok(())
}

#[derive(Args)]
pub struct ReadArgs {
    #[arg(long)]
    topic: String,
    /// Broker group that holds the queue.
    #[arg(long, default_value = "broker-a")]
    group: String,
    #[arg(long, default_value_t = 0)]
    queue: i32,
    #[arg(long, default_value_t = 0)]
    offset: i64,
    #[arg(long, default_value_t = 10)]
    max: i32,
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
}

pub async fn read(a: ReadArgs) -> Result<(), String> {
    let reader = QueueReader::new(cluster(&a.namesrv)?);
    let (msgs, next) =
        reader.pull(&a.topic, &a.group, a.queue, a.offset, a.max, Duration::ZERO).await.map_err(|e| e.to_string())?;
    println!("{:>8}  {:<36} {:<10} body", "offset", "message id", "tag");
    for m in &msgs {
        let body = String::from_utf8_lossy(&m.body[..m.body.len().min(40)]).to_string();
        println!("{:>8}  {:<36} {:<10} {body}", m.offset, m.message_id, m.tag.clone().unwrap_or_default());
    }
    println!("{} messages; next offset {next}", msgs.len());
    Ok(())
}

#[derive(Args)]
pub struct ProgressArgs {
    /// Consumer group.
    group: String,
    topic: String,
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
}

/// Per queue: min and max offset, the group's committed offset (UpdateOffset,
/// as pull consumers commit), its pop progress (simple and push consumers:
/// everything below `consumed` is acked, `in flight` are delivered and
/// invisible), and the lag behind the max offset counted from the further of
/// the two.
pub async fn consumer_progress(a: ProgressArgs) -> Result<(), String> {
    let c = cluster(&a.namesrv)?;
    let progress = c.consumer_progress(&a.group, &a.topic).await.map_err(|e| e.to_string())?;
    println!(
        "{:<12} {:>5} {:>12} {:>12} {:>12} {:>12} {:>9} {:>10}",
        "group", "queue", "min offset", "max offset", "committed", "pop acked", "in flight", "lag"
    );
    let mut total_lag = 0;
    let dash = |v: Option<i64>| v.map(|o| o.to_string()).unwrap_or_else(|| "-".into());
    for (group, queues) in &progress {
        for q in queues {
            let done = q.committed_offset.max(q.pop_consumed).unwrap_or(q.min_offset).max(q.min_offset);
            let lag = (q.max_offset - done).max(0);
            total_lag += lag;
            println!(
                "{group:<12} {:>5} {:>12} {:>12} {:>12} {:>12} {:>9} {lag:>10}",
                q.queue_id,
                q.min_offset,
                q.max_offset,
                dash(q.committed_offset),
                dash(q.pop_consumed),
                q.inflight,
            );
        }
    }
    println!("total lag of '{}' on '{}': {total_lag}", a.group, a.topic);
    Ok(())
}

pub async fn status(namesrv: &str) -> Result<(), String> {
    let c = cluster(namesrv)?;
    let groups = c.groups().await.map_err(|e| e.to_string())?;
    for g in groups {
        println!("group {} (cluster {}), leader {} {}", g.group, g.cluster, g.leader_id, g.leader_addr);
        let addr = if g.leader_addr.is_empty() {
            g.nodes.first().map(|n| n.addr.clone())
        } else {
            Some(g.leader_addr.clone())
        };
        let Some(addr) = addr else { continue };
        let mut admin = c.admin(&addr).map_err(|e| e.to_string())?;
        let st = admin
            .group_status(raftmq_proto::broker::GroupStatusRequest {})
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        println!(
            "  {:>4} {:<22} {:<11} {:>5} {:>10} {:>10} {:>10} {:>10}",
            "node", "addr", "role", "term", "last log", "committed", "applied", "matched"
        );
        for r in st.replicas {
            let matched = r.matched_index.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "  {:>4} {:<22} {:<11} {:>5} {:>10} {:>10} {:>10} {:>10}",
                r.node_id, r.addr, r.role, r.term, r.last_log_index, r.committed_index, r.applied_index, matched
            );
        }
        for t in g.topics {
            println!("  topic {:<24} queues {}", t.name, t.queue_count);
        }
    }
    Ok(())
}
