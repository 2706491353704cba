//! The consume side of `raftmq bench`, in ../shared/bench's scenarios:
//! consume throughput of pre-published 1 KiB messages, each acknowledged (one
//! ack request per received batch, naming every message of it), with acks
//! awaited before the next receive or pipelined (sent from a spawned task,
//! at most [`PIPELINED_ACKS`] outstanding), the latter with one receive under
//! way or two (a prefetching client, as the peers' pull consumers are); and
//! end-to-end latency (send start
//! to receipt) while a paced producer sends at a fixed rate and the consumer
//! pipelines its acks, as the peers' runs do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer, ReceivedMessage, SimpleConsumer};
use tokio::sync::Semaphore;

use crate::devcluster::DevCluster;

/// Messages asked for per receive (the peers' pull batch is 256 too).
const RECEIVE_BATCH: i32 = 256;
/// Ack requests in flight at once when acks are pipelined.
const PIPELINED_ACKS: usize = 8;

pub struct ConsumeRow {
    mode: String,
    acks: String,
    prefilled: u64,
    consumed: u64,
    secs: f64,
    /// Receive calls made and the time spent in them, and likewise for awaited acks.
    receives: (u64, Duration),
    acks_awaited: (u64, Duration),
    /// CPU of the whole process (three brokers and the client) per consumed message.
    cpu_us_per_msg: f64,
}

pub struct E2eRow {
    mode: String,
    rate: u64,
    received: u64,
    hist: hdrhistogram::Histogram<u64>,
    /// Send start to the send's acknowledgement, as the peers' e2e tables also show.
    acked: hdrhistogram::Histogram<u64>,
}

fn client(cluster: &DevCluster) -> Result<Cluster, String> {
    Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).map_err(|e| e.to_string())
}

/// How the consumer acknowledges, and how many receives it keeps under way.
#[derive(Debug, Clone, Copy)]
pub enum Acks {
    /// One receive at a time; each batch's ack is awaited before the next receive.
    Awaited,
    /// Acks from spawned tasks (at most [`PIPELINED_ACKS`] outstanding), with `receivers`
    /// receive loops at once: 2 is what a prefetching client (the peers' pull consumers) does.
    Pipelined { receivers: usize },
}

impl Acks {
    fn label(self) -> String {
        match self {
            Acks::Awaited => "awaited".into(),
            Acks::Pipelined { receivers: 1 } => "pipelined".into(),
            Acks::Pipelined { receivers } => format!("pipelined, {receivers} receives"),
        }
    }
}

pub async fn consume(
    cluster: &DevCluster,
    producer: &Arc<Producer>,
    body: &bytes::Bytes,
    mode: &str,
    count: u64,
    acks: Acks,
) -> Result<ConsumeRow, String> {
    let c = client(cluster)?;
    let (topic, receivers, pipelined) = match acks {
        Acks::Awaited => ("bench-consume-a".to_string(), 1, false),
        Acks::Pipelined { receivers } => (format!("bench-consume-p{receivers}"), receivers.max(1), true),
    };
    c.create_topic(&topic, 4, &[]).await.map_err(|e| e.to_string())?;
    let fill = ProgressBar::new(count);
    fill.set_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}").map_err(|e| e.to_string())?);
    fill.set_message(format!("{mode:>5} prefill"));
    let (prefilled, _) = publish_to(producer, body, &topic, count, &fill).await;
    fill.finish_and_clear();
    let consumer = Arc::new(SimpleConsumer::new(c, "bench-cg", &topic).with_invisible(Duration::from_secs(60)));
    let label = acks.label();
    let bar = ProgressBar::new(prefilled);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{mode:>5} consume, {label} acks {{bar:30}} {{pos}}/{{len}} {{per_sec}}"
        ))
        .map_err(|e| e.to_string())?,
    );
    let acked = Arc::new(AtomicU64::new(0));
    let acker = Acker::new(consumer.clone(), acked.clone(), bar.clone(), pipelined);
    let received = AtomicU64::new(0);
    let cpu0 = crate::bench::cpu_seconds();
    let t = Instant::now();
    // With several receive loops one may find nothing while the other holds the last
    // messages: it must not long-poll the empty topic then, so they do not wait.
    let wait = if receivers > 1 { Duration::ZERO } else { Duration::from_secs(1) };
    let receive_loop = || async {
        let (mut receives, mut acks_awaited) = ((0, Duration::ZERO), (0, Duration::ZERO));
        while acked.load(Ordering::Relaxed) < prefilled && t.elapsed() < Duration::from_secs(60) {
            // Receive only what is not yet received: a pipelined consumer must not
            // long-poll an empty topic while its last acks are in flight.
            if received.load(Ordering::Relaxed) >= prefilled {
                acker.drain().await;
                continue;
            }
            let r = Instant::now();
            let got = consumer.receive(RECEIVE_BATCH, wait).await;
            receives = (receives.0 + 1, receives.1 + r.elapsed());
            let Ok(batch) = got else { continue };
            received.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let a = Instant::now();
            acker.ack(batch).await;
            if !pipelined {
                acks_awaited = (acks_awaited.0 + 1, acks_awaited.1 + a.elapsed());
            }
        }
        (receives, acks_awaited)
    };
    let loops = futures::future::join_all((0..receivers).map(|_| receive_loop())).await;
    acker.drain().await;
    bar.finish_and_clear();
    let consumed = acked.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    let cpu_us_per_msg = (crate::bench::cpu_seconds() - cpu0) * 1e6 / consumed.max(1) as f64;
    let sum = |a: (u64, Duration), b: (u64, Duration)| (a.0 + b.0, a.1 + b.1);
    let (receives, acks_awaited) =
        loops.into_iter().fold(((0, Duration::ZERO), (0, Duration::ZERO)), |(r, a), (r2, a2)| (sum(r, r2), sum(a, a2)));
    Ok(ConsumeRow {
        mode: mode.to_string(),
        acks: label,
        prefilled,
        consumed,
        secs,
        receives,
        acks_awaited,
        cpu_us_per_msg,
    })
}

/// Acks received batches, awaited or from spawned tasks (bounded).
struct Acker {
    consumer: Arc<SimpleConsumer>,
    acked: Arc<AtomicU64>,
    bar: ProgressBar,
    slots: Option<Arc<Semaphore>>,
}

impl Acker {
    fn new(consumer: Arc<SimpleConsumer>, acked: Arc<AtomicU64>, bar: ProgressBar, pipelined: bool) -> Self {
        let slots = pipelined.then(|| Arc::new(Semaphore::new(PIPELINED_ACKS)));
        Self { consumer, acked, bar, slots }
    }

    async fn ack(&self, batch: Vec<ReceivedMessage>) {
        if batch.is_empty() {
            return;
        }
        let (consumer, acked, bar) = (self.consumer.clone(), self.acked.clone(), self.bar.clone());
        let work = async move {
            if let Ok(results) = consumer.ack_all(&batch).await {
                let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
                acked.fetch_add(ok, Ordering::Relaxed);
                bar.inc(ok);
            }
        };
        match &self.slots {
            None => work.await,
            Some(slots) => {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
        }
    }

    /// Waits until no pipelined ack is in flight.
    async fn drain(&self) {
        if let Some(slots) = &self.slots {
            let _all = slots.acquire_many(PIPELINED_ACKS as u32).await;
        }
    }
}

/// Sends `count` messages to `topic` with 64 workers; returns how many were acknowledged.
async fn publish_to(
    producer: &Arc<Producer>,
    body: &bytes::Bytes,
    topic: &str,
    count: u64,
    bar: &ProgressBar,
) -> (u64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let workers = (0..64).map(|_| {
        let (p, b, n, bar, topic) = (producer.clone(), body.clone(), next.clone(), bar.clone(), topic.to_string());
        tokio::spawn(async move {
            let (mut ok, mut err) = (0, 0);
            while n.fetch_add(1, Ordering::Relaxed) < count {
                match p.send(Message::new(topic.clone(), b.clone())).await {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
                bar.inc(1);
            }
            (ok, err)
        })
    });
    futures::future::join_all(workers).await.into_iter().flatten().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

pub async fn end_to_end(
    cluster: &DevCluster,
    producer: &Arc<Producer>,
    body: &bytes::Bytes,
    mode: &str,
    rate: u64,
    secs: u64,
) -> Result<E2eRow, String> {
    let c = client(cluster)?;
    c.create_topic("bench-e2e", 4, &[]).await.map_err(|e| e.to_string())?;
    let consumer =
        Arc::new(SimpleConsumer::new(c, "bench-e2e-cg", "bench-e2e").with_invisible(Duration::from_secs(60)));
    let acker = Acker::new(consumer.clone(), Arc::default(), ProgressBar::hidden(), true);
    let stop = Instant::now() + Duration::from_secs(secs);
    // The producer stamps its send start into the body; the consumer measures on receipt.
    let p = producer.clone();
    let size = body.len();
    let epoch = Instant::now();
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
        let mut inflight = Vec::new();
        while Instant::now() < stop {
            tick.tick().await;
            let mut b = vec![b'x'; size.max(8)];
            b[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_le_bytes());
            let p = p.clone();
            inflight.push(tokio::spawn(async move {
                let t = Instant::now();
                p.send(Message::new("bench-e2e", b)).await.ok().map(|_| t.elapsed().as_micros() as u64)
            }));
        }
        let mut acked = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits are valid");
        for us in futures::future::join_all(inflight).await.into_iter().flatten().flatten() {
            let _ = acked.record(us.max(1));
        }
        acked
    });
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    while Instant::now() < stop + Duration::from_secs(2) {
        let Ok(batch) = consumer.receive(RECEIVE_BATCH, Duration::from_millis(200)).await else { continue };
        let now = epoch.elapsed().as_micros() as u64;
        for m in &batch {
            if let Some(b) = m.body.get(..8) {
                let sent = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let _ = hist.record(now.saturating_sub(sent).max(1));
            }
        }
        acker.ack(batch).await;
    }
    acker.drain().await;
    let acked = sender.await.map_err(|e| e.to_string())?;
    Ok(E2eRow { mode: mode.to_string(), rate, received: hist.len(), hist, acked })
}

pub fn print_tables(consume: &[ConsumeRow], e2e: &[E2eRow]) {
    if !consume.is_empty() {
        println!();
        println!(
            "raftmq consume: pre-published 1 KiB messages, one simple consumer (receive batches of {RECEIVE_BATCH}), \
             every message acked"
        );
        println!(
            "| {:<5} | {:<22} | {:>9} | {:>9} | {:>9} | {:>14} | {:>10} | {:>16} |",
            "mode", "acks", "prefilled", "consumed", "msgs/s", "receive ms/call", "ack ms/call", "CPU µs/msg (all)"
        );
        let per_call = |(n, d): (u64, Duration)| match n {
            0 => "-".to_string(),
            n => format!("{:.2}", d.as_secs_f64() * 1e3 / n as f64),
        };
        for r in consume {
            println!(
                "| {:<5} | {:<22} | {:>9} | {:>9} | {:>9.0} | {:>15} | {:>11} | {:>16.1} |",
                r.mode,
                r.acks,
                r.prefilled,
                r.consumed,
                r.consumed as f64 / r.secs,
                per_call(r.receives),
                per_call(r.acks_awaited),
                r.cpu_us_per_msg
            );
        }
    }
    if !e2e.is_empty() {
        println!();
        println!("raftmq end-to-end latency (send start → consumer receipt), paced producer");
        println!(
            "| {:<5} | {:>6} | {:>8} | {:>7} | {:>7} | {:>8} | {:>8} | {:>14} | {:>14} |",
            "mode", "rate", "received", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "send ack p50", "send ack p99"
        );
        for r in e2e {
            println!(
                "| {:<5} | {:>6} | {:>8} | {:>7} | {:>7} | {:>8} | {:>8} | {:>14} | {:>14} |",
                r.mode,
                r.rate,
                r.received,
                r.hist.value_at_quantile(0.5),
                r.hist.value_at_quantile(0.99),
                r.hist.value_at_quantile(0.999),
                r.hist.max(),
                r.acked.value_at_quantile(0.5),
                r.acked.value_at_quantile(0.99)
            );
        }
    }
}
