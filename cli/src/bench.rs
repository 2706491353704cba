//! `raftmq bench`: the same scenarios as ../shared/bench's peer runs, against a
//! fresh 3-replica group on loopback (in this process): 1 KiB messages, N
//! workers with one send in flight each, one Raft-committed ack per message,
//! 500 warm-up sends, bounded by a count and a time; in `sync` and `async`
//! durability. Then failover: the leader is killed while a producer sends, and
//! the time to the first successful send afterwards is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use raftmq_broker::config::DurabilityMode;
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer};

use crate::bench_consume::{Acks, consume, end_to_end};
use crate::devcluster::{DevCluster, DevClusterSpec};

#[derive(Args)]
pub struct BenchArgs {
    /// Concurrency levels (workers with one send in flight each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Durability modes to run.
    #[arg(long, value_delimiter = ',', default_value = "sync,async")]
    modes: Vec<String>,
    /// Messages per scenario (upper bound).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Seconds per scenario (upper bound).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Leader kills to time (0 skips the failover measurement).
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    #[arg(long, default_value_t = 19_081)]
    base_port: u16,
    /// Messages pre-published for the consume scenario (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    consume_count: u64,
    /// Rate of the end-to-end latency scenario, msgs/s (0 skips it).
    #[arg(long, default_value_t = 1000)]
    e2e_rate: u64,
    /// SendMessage calls concurrent sends share at most (the SDK's
    /// `Producer::with_shared_calls`); 0 makes one call per send, as the
    /// official clients do.
    #[arg(long, default_value_t = raftmq_client::producer::DEFAULT_SHARED_CALLS)]
    shared_calls: usize,
    /// The brokers' `max_inflight_proposals` (default: the broker's default).
    #[arg(long)]
    max_inflight_proposals: Option<usize>,
}

struct Row {
    mode: String,
    concurrency: usize,
    sent: u64,
    errors: u64,
    secs: f64,
    cpu_us_per_msg: f64,
    /// Messages per Raft entry (sends coalesce under load).
    per_entry: f64,
    hist: hdrhistogram::Histogram<u64>,
}

pub(crate) fn cpu_seconds() -> f64 {
    // utime + stime of this process (brokers and client together), from /proc.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

pub async fn run(a: BenchArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    let mut failovers = Vec::new();
    let mut consume_rows = Vec::new();
    let mut e2e_rows = Vec::new();
    for (mi, mode) in a.modes.iter().enumerate() {
        let durability = match mode.as_str() {
            "sync" => DurabilityMode::Sync,
            "async" => DurabilityMode::Async,
            m => return Err(format!("unknown mode {m:?}")),
        };
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let spec = DevClusterSpec {
            groups: 1,
            replicas: a.replicas,
            data_dir: dir.path().to_path_buf(),
            namesrv_port: a.base_port + 100 * mi as u16 + 99,
            base_port: a.base_port + 100 * mi as u16,
            durability,
        };
        let mut cluster = DevCluster::start_with(&spec, |c| {
            if let Some(n) = a.max_inflight_proposals {
                c.max_inflight_proposals = n;
            }
        })
        .await?;
        cluster.wait_for_leaders(Duration::from_secs(10)).await?;
        let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).map_err(|e| e.to_string())?;
        client.create_topic("bench", 4, &[]).await.map_err(|e| e.to_string())?;
        let producer = Arc::new(Producer::new(client).with_shared_calls(a.shared_calls));
        let body = bytes::Bytes::from(vec![b'x'; a.size]);
        publish(&producer, &body, 8, 500, Duration::from_secs(30), None).await; // warm-up
        for &c in &a.concurrency {
            let bar = ProgressBar::new(a.count);
            bar.set_style(
                ProgressStyle::with_template(&format!("{mode:>5} c={c:<3} {{bar:30}} {{pos}}/{{len}} {{per_sec}}"))
                    .map_err(|e| e.to_string())?,
            );
            let cpu0 = cpu_seconds();
            let log0 = leader_log_index(&cluster);
            let t = Instant::now();
            let (hist, errors) = publish(&producer, &body, c, a.count, Duration::from_secs(a.secs), Some(&bar)).await;
            let secs = t.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let sent = hist.len();
            let cpu = (cpu_seconds() - cpu0) * 1e6 / sent.max(1) as f64;
            let entries = leader_log_index(&cluster).saturating_sub(log0).max(1);
            let per_entry = (sent + errors) as f64 / entries as f64;
            rows.push(Row {
                mode: mode.clone(),
                concurrency: c,
                sent,
                errors,
                secs,
                cpu_us_per_msg: cpu,
                per_entry,
                hist,
            });
        }
        if a.consume_count > 0 {
            for acks in [Acks::Awaited, Acks::Pipelined { receivers: 1 }, Acks::Pipelined { receivers: 2 }] {
                consume_rows.push(consume(&cluster, &producer, &body, mode, a.consume_count, acks).await?);
            }
        }
        if a.e2e_rate > 0 {
            e2e_rows.push(end_to_end(&cluster, &producer, &body, mode, a.e2e_rate, a.secs).await?);
        }
        for i in 0..a.failovers {
            let ms = failover(&mut cluster, &producer, &body).await?;
            println!("{mode:>5} failover {}: first successful send {ms:.0} ms after the leader was killed", i + 1);
            failovers.push((mode.clone(), ms));
        }
        cluster.shutdown().await;
    }
    print_table(&rows, &failovers, a.shared_calls);
    crate::bench_consume::print_tables(&consume_rows, &e2e_rows);
    Ok(())
}

fn leader_log_index(cluster: &DevCluster) -> u64 {
    cluster.leader_of(0).and_then(|r| cluster.nodes[0][r].as_ref()).map(|n| n.last_log_index()).unwrap_or(0)
}

/// `c` workers, one send in flight each, until `count` sends or `max` time.
async fn publish(
    producer: &Arc<Producer>,
    body: &bytes::Bytes,
    c: usize,
    count: u64,
    max: Duration,
    bar: Option<&ProgressBar>,
) -> (hdrhistogram::Histogram<u64>, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + max;
    let workers = (0..c).map(|_| {
        let (producer, body, next, bar) = (producer.clone(), body.clone(), next.clone(), bar.cloned());
        tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
            let mut errors = 0;
            while next.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < stop_at {
                let t = Instant::now();
                match producer.send(Message::new("bench", body.clone())).await {
                    Ok(_) => {
                        if let Some(h) = h.as_mut() {
                            let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                        }
                    }
                    Err(_) => errors += 1,
                }
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            (h, errors)
        })
    });
    let mut hist =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable_hist());
    let mut errors = 0;
    for r in futures::future::join_all(workers).await.into_iter().flatten() {
        if let Some(h) = r.0 {
            let _ = hist.add(h);
        }
        errors += r.1;
    }
    (hist, errors)
}

fn unreachable_hist() -> hdrhistogram::Histogram<u64> {
    // new_with_bounds(1, 60e6, 3) is a valid configuration; this is its fallback.
    hdrhistogram::Histogram::<u64>::new(3).unwrap_or_else(|_| std::process::abort())
}

/// Kills the leader while one producer sends every 5 ms; returns the time from
/// the kill to the first successful send, then restarts the killed replica.
async fn failover(cluster: &mut DevCluster, producer: &Arc<Producer>, body: &bytes::Bytes) -> Result<f64, String> {
    let leader = cluster.wait_for_leaders(Duration::from_secs(10)).await?[0];
    // The cluster is healthy: a send succeeds.
    producer.send(Message::new("bench", body.clone())).await.map_err(|e| e.to_string())?;
    cluster.kill(0, leader).await;
    // Only sends that start after the leader is gone count.
    let killed_at = Instant::now();
    let p = producer.clone();
    let b = body.clone();
    let sender = tokio::spawn(async move {
        loop {
            if p.send(Message::new("bench", b.clone())).await.is_ok() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let ok_at = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .map_err(|_| "no successful send within 30 s of the leader kill".to_string())?
        .map_err(|e| e.to_string())?;
    let ms = ok_at.duration_since(killed_at).as_secs_f64() * 1000.0;
    cluster.restart(0, leader).await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // let it catch up before the next round
    Ok(ms)
}

fn print_table(rows: &[Row], failovers: &[(String, f64)], shared_calls: usize) {
    println!();
    let calls = match shared_calls {
        0 => "one SendMessage call per send".to_string(),
        n => format!("concurrent sends share up to {n} SendMessage calls"),
    };
    println!(
        "raftmq publish: 3-replica group on loopback, 1 message per send ({calls}), ack after Raft commit + apply"
    );
    println!(
        "| {:<5} | {:>3} | {:>8} | {:>6} | {:>9} | {:>7} | {:>7} | {:>8} | {:>8} | {:>9} | {:>16} |",
        "mode",
        "c",
        "sent",
        "errors",
        "msgs/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "msg/entry",
        "CPU µs/msg (all)"
    );
    println!("|{}|", "-".repeat(124));
    for r in rows {
        println!(
            "| {:<5} | {:>3} | {:>8} | {:>6} | {:>9.0} | {:>7} | {:>7} | {:>8} | {:>8} | {:>9.1} | {:>16.1} |",
            r.mode,
            r.concurrency,
            r.sent,
            r.errors,
            r.sent as f64 / r.secs,
            r.hist.value_at_quantile(0.5),
            r.hist.value_at_quantile(0.99),
            r.hist.value_at_quantile(0.999),
            r.hist.max(),
            r.per_entry,
            r.cpu_us_per_msg
        );
    }
    if !failovers.is_empty() {
        println!();
        println!("failover (leader killed → first successful send):");
        for (m, ms) in failovers {
            println!("  {m:>5}: {ms:>7.0} ms");
        }
    }
}
