//! `raftmq consume`: consumes a topic as a consumer group with one of the
//! SDK's three consumers, with a progress bar, and ends with a summary
//! (messages, msgs/s, redeliveries, errors).
//!
//! It stops after `--count` messages, after `--idle` seconds without one, or
//! on Ctrl-C. `simple` and `push` acknowledge what they consume; `pull`
//! commits its offsets after every poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use raftmq_client::pull::PullConsumer;
use raftmq_client::push::{ConsumeResult, PushConsumer};
use raftmq_client::{Cluster, ReceivedMessage, SimpleConsumer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Receive batches and acknowledge them (SimpleConsumer).
    Simple,
    /// A listener per message (PushConsumer).
    Push,
    /// Read every queue by offset and commit (PullConsumer).
    Pull,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Consumer group.
    pub group: String,
    pub topic: String,
    /// Stop after this many messages (default: run until --idle or Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    #[arg(long, value_enum, default_value_t = Mode::Push)]
    pub mode: Mode,
    /// Tag expression, e.g. `a || b`.
    #[arg(long, default_value = "*")]
    pub tag: String,
    /// Stop after this many seconds without a message.
    #[arg(long)]
    pub idle: Option<u64>,
    /// Print one line per message.
    #[arg(long)]
    pub print: bool,
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
}

/// What a run consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeSummary {
    pub messages: u64,
    pub secs: f64,
    /// Deliveries with an attempt above 1; `None` in pull mode, which has no deliveries.
    pub redeliveries: Option<u64>,
    pub errors: u64,
}

/// Counters shared with the push listener, which runs on other threads.
struct Tally {
    started: Instant,
    messages: AtomicU64,
    redeliveries: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds from `started` to the last message.
    last_ms: AtomicU64,
    bar: ProgressBar,
    print: bool,
}

impl Tally {
    /// `line` is built only with `--print`.
    fn record(&self, attempt: i32, line: impl FnOnce() -> String) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.redeliveries.fetch_add(1, Ordering::Relaxed);
        }
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if self.print {
            self.bar.println(line());
        }
        self.bar.inc(1);
    }

    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.bar.println(format!("error: {e}"));
    }

    fn done(&self, a: &ConsumeArgs) -> bool {
        let n = self.messages.load(Ordering::Relaxed);
        let quiet_for =
            self.started.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
        a.count.is_some_and(|c| n >= c) || a.idle.is_some_and(|s| quiet_for >= Duration::from_secs(s))
    }

    fn remaining(&self, a: &ConsumeArgs, batch: u64) -> u64 {
        a.count.map(|c| c.saturating_sub(self.messages.load(Ordering::Relaxed))).unwrap_or(batch).clamp(1, batch)
    }
}

fn progress_bar(count: Option<u64>) -> Result<ProgressBar, String> {
    let (bar, template) = match count {
        // A short run prints its summary only.
        Some(n) if n < 100 => (ProgressBar::hidden(), ""),
        Some(n) => (ProgressBar::new(n), "{bar:40} {pos}/{len} consumed  {per_sec}  eta {eta}"),
        None => (ProgressBar::new_spinner(), "{spinner} {pos} consumed  {per_sec}  {elapsed}"),
    };
    if !template.is_empty() {
        bar.set_style(ProgressStyle::with_template(template).map_err(|e| e.to_string())?);
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    Ok(bar)
}

/// Runs `raftmq consume` and prints the summary table.
pub async fn consume(a: ConsumeArgs) -> Result<ConsumeSummary, String> {
    let cluster = Cluster::new(std::slice::from_ref(&a.namesrv)).map_err(|e| e.to_string())?;
    let tally = Arc::new(Tally {
        started: Instant::now(),
        messages: AtomicU64::new(0),
        redeliveries: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
        bar: progress_bar(a.count)?,
        print: a.print,
    });
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    match a.mode {
        Mode::Simple => simple(&a, cluster, &tally, ctrl_c).await,
        Mode::Push => push(&a, cluster, &tally, ctrl_c).await?,
        Mode::Pull => pull(&a, cluster, &tally, ctrl_c).await?,
    }
    tally.bar.finish_and_clear();
    let summary = ConsumeSummary {
        messages: tally.messages.load(Ordering::Relaxed),
        secs: tally.started.elapsed().as_secs_f64(),
        redeliveries: (a.mode != Mode::Pull).then(|| tally.redeliveries.load(Ordering::Relaxed)),
        errors: tally.errors.load(Ordering::Relaxed),
    };
    print_summary(a.mode, &summary);
    Ok(summary)
}

fn print_summary(mode: Mode, s: &ConsumeSummary) {
    let redeliveries = s.redeliveries.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
    println!("{:<8} {:>10} {:>8} {:>10} {:>12} {:>8}", "mode", "messages", "secs", "msgs/s", "redeliveries", "errors");
    println!(
        "{:<8} {:>10} {:>8.1} {:>10.0} {:>12} {:>8}",
        format!("{mode:?}").to_lowercase(),
        s.messages,
        s.secs,
        s.messages as f64 / s.secs.max(1e-9),
        redeliveries,
        s.errors
    );
}

/// How long one receive or poll waits; also how often `--idle` is checked.
const WAIT: Duration = Duration::from_secs(1);

async fn simple(
    a: &ConsumeArgs,
    cluster: Cluster,
    t: &Tally,
    mut ctrl_c: std::pin::Pin<&mut impl Future<Output = std::io::Result<()>>>,
) {
    let consumer = SimpleConsumer::new(cluster, &a.group, &a.topic).with_tag_filter(&a.tag);
    while !t.done(a) {
        let batch = tokio::select! {
            _ = &mut ctrl_c => return,
            r = consumer.receive(t.remaining(a, 32) as i32, WAIT) => r,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                t.error(e);
                continue;
            }
        };
        for m in &batch {
            t.record(m.delivery_attempt, || describe(m));
        }
        // One ack request per broker group (a batch comes from one group).
        match consumer.ack_all(&batch).await {
            Ok(results) => results.into_iter().filter_map(Result::err).for_each(|e| t.error(e)),
            Err(e) => t.error(e),
        }
    }
}

async fn push(
    a: &ConsumeArgs,
    cluster: Cluster,
    t: &Arc<Tally>,
    mut ctrl_c: std::pin::Pin<&mut impl Future<Output = std::io::Result<()>>>,
) -> Result<(), String> {
    let listener_tally = t.clone();
    let consumer = PushConsumer::builder(cluster, &a.group, &a.topic)
        .tag_filter(&a.tag)
        .long_poll(WAIT)
        .start(move |m| {
            listener_tally.record(m.delivery_attempt, || describe(m));
            ConsumeResult::Success
        })
        .await
        .map_err(|e| e.to_string())?;
    // The listener counts; this loop only decides when to stop.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !t.done(a) {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {}
        }
    }
    let stats = consumer.shutdown().await;
    t.errors.fetch_add(stats.ack_errors + stats.receive_errors, Ordering::Relaxed);
    Ok(())
}

async fn pull(
    a: &ConsumeArgs,
    cluster: Cluster,
    t: &Tally,
    mut ctrl_c: std::pin::Pin<&mut impl Future<Output = std::io::Result<()>>>,
) -> Result<(), String> {
    let mut consumer = PullConsumer::builder(cluster, &a.group, &a.topic)
        .tag_filter(&a.tag)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    while !t.done(a) {
        let polled = tokio::select! {
            _ = &mut ctrl_c => break,
            r = consumer.poll(t.remaining(a, 64) as usize, WAIT) => r,
        };
        match polled {
            Ok(msgs) => {
                for m in &msgs {
                    t.record(1, || format!("{} offset {}: {}", m.queue, m.message.offset, body(&m.message.body)));
                }
            }
            Err(e) => t.error(e),
        }
        if let Err(e) = consumer.commit().await {
            t.error(e);
        }
    }
    Ok(())
}

fn describe(m: &ReceivedMessage) -> String {
    format!("{} attempt {} {:?}: {}", m.message_id, m.delivery_attempt, m.tag, body(&m.body))
}

fn body(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()
}
