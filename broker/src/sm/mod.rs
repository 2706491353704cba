//! The replicated state machine: applies committed entries in log order on
//! every replica.
//!
//! What it derives from the log: queue offsets and the consume queues, the
//! message index, topic configs and consumer offsets. All of it can be rebuilt
//! from the log: on restart the state is loaded from the last checkpoint and
//! openraft re-applies every committed entry after it.
//!
//! Checkpoint order (why the consume queues can be rebuilt): flush the index,
//! fsync the consume queues, then atomically replace the checkpoint file. On
//! recovery every consume queue is cut back to the next offset the checkpoint
//! recorded, and re-applying the log re-dispatches the rest.
//!
//! # Snapshots
//! A snapshot is a metadata checkpoint pinned at the retention boundary
//! (`pins.rs`), so a lagging replica installs it and then receives every
//! retained entry through normal replication. Until retention purges the log
//! there is no boundary, and openraft never needs a snapshot.
//!
//! Installing one (and finishing an install a crash interrupted, on open):
//! store the pin, move the log's base past it, reset the consume queues to the
//! pin's next offsets and empty the index, then store the pin as the
//! checkpoint. A crash in between leaves a log purged past the checkpoint, and
//! open then recovers from the pin at the purge point.

pub mod apply;
pub mod attempts;
pub mod checkpoint;
pub mod dedup;
pub mod delay;
pub mod index_writer;
pub mod pins;
pub mod pop;
pub mod retention;
pub mod state;
pub mod window_runs;

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use prost::Message;
use raftmq_proto::broker::{Checkpoint, QueueNext};
use raftmq_raft::pb as conv;
use raftmq_raft::{EntryPayload, LogId, SnapshotData, StoredMembership, TypeConfig};
use raftmq_store::commitlog::CommitLog;
use raftmq_store::consume_queue::ConsumeQueueStore;
use raftmq_store::index::MessageIndex;
use tokio::sync::watch;
use tokio::time::Instant;

use self::checkpoint::CheckpointFile;
use self::index_writer::IndexWriter;
use self::pins::{PinInfo, PinStore};
use self::state::{Captured, Meta};
use self::window_runs::WindowRuns;

/// Units per consume-queue file: 300k × 28 B ≈ 8 MiB.
const CQ_UNITS_PER_FILE: u64 = 300_000;

/// How often a regular checkpoint is also kept as a pin, by default.
pub const DEFAULT_PIN_INTERVAL: Duration = Duration::from_secs(600);

/// State the gRPC services read while the state machine writes it.
pub struct Shared {
    pub log: CommitLog,
    pub cq: ConsumeQueueStore,
    pub index: MessageIndex,
    meta: RwLock<Meta>,
    applied_tx: watch::Sender<u64>,
    /// Pinned checkpoints (snapshots at retention boundaries).
    pub pins: PinStore,
    /// Bumped whenever a `Retain` is applied (the node's purger waits on it).
    retained_tx: watch::Sender<u64>,
    /// The applied index of the last durable checkpoint.
    durable_tx: watch::Sender<u64>,
}

impl Shared {
    pub fn meta(&self) -> RwLockReadGuard<'_, Meta> {
        self.meta.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Notified with the last applied index after every applied batch (long polling waits on it).
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    pub(crate) fn retained_changed(&self) {
        self.retained_tx.send_modify(|n| *n += 1);
    }

    /// Notified after each applied `Retain` that expired something.
    pub fn subscribe_retained(&self) -> watch::Receiver<u64> {
        self.retained_tx.subscribe()
    }

    /// Notified with the applied index of each checkpoint once it is durable.
    pub fn subscribe_durable(&self) -> watch::Receiver<u64> {
        self.durable_tx.subscribe()
    }

    /// The first offset of a queue that can still be read: retention's first
    /// offset, or the consume queue's own start if that is later (a replica
    /// that installed a snapshot holds no units below it).
    pub fn first_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.meta().retained.first(topic, queue_id).max(self.cq.min_offset(topic, queue_id))
    }
}

pub struct BrokerStateMachine {
    shared: Arc<Shared>,
    index_writer: Arc<IndexWriter>,
    checkpoint: Arc<CheckpointFile>,
    /// The idempotent-send window's sealed runs, which regular checkpoints name.
    window_runs: Arc<WindowRuns>,
    /// The checkpoint being written in the background, if any.
    checkpoint_task: Option<std::thread::JoinHandle<io::Result<()>>>,
    checkpoint_interval: Duration,
    /// tokio's clock, so a simulation's paused clock times checkpoints too.
    last_checkpoint: Instant,
    /// Checkpoints written on the applying task (see [`BrokerStateMachine::open_inline`]).
    inline: bool,
    /// A checkpoint is also kept as a pin at most this often.
    pin_interval: Duration,
    last_pin: Instant,
    /// The `Retain` (by its entry's index) the last checkpoint taken covers.
    retain_checkpointed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SmOpenError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("consume queue: {0}")]
    Cq(String),
    #[error("message index: {0}")]
    Index(String),
    #[error("checkpoint does not decode: {0}")]
    Decode(String),
    #[error(
        "the log was purged up to {purged}, past the checkpoint (applied {applied:?}), and no pinned checkpoint at {purged} is left to recover from"
    )]
    NoPinAtPurge { applied: Option<u64>, purged: u64 },
    #[error("pinned checkpoint: {0}")]
    Pin(String),
}

/// A replica may apply a committed entry before its own fdatasync of it
/// returns (openraft applies what a quorum holds), and a checkpoint written
/// by an older build (before checkpoints waited for a log flush) can name an
/// applied index the log lost in a power loss. openraft would then try to
/// cover the gap with a snapshot, which this state machine refuses, and the
/// replica could never start. Such a checkpoint is set aside and the state is
/// rebuilt from the log (the lost entries come back from the leader at the
/// same positions): from the start, or from the pin at the purge point.
fn ahead_of_log(c: &Checkpoint, log: &CommitLog) -> bool {
    let Some(applied) = c.last_applied.as_ref().map(|l| l.index) else { return false };
    let last = log.last_log_id().map(|l| l.index);
    if last.is_some_and(|l| l >= applied) {
        return false;
    }
    tracing::warn!(
        applied,
        log_end = ?last,
        "the checkpoint is ahead of the recovered log (unsynced entries were lost): rebuilding the state from the log"
    );
    true
}

fn applied_of(c: &Checkpoint) -> Option<u64> {
    c.last_applied.as_ref().map(|l| l.index)
}

/// Resets the consume queues to the next offsets `c` recorded, each empty
/// (a replica that installs a snapshot applies only the entries after it),
/// and empties the index.
fn reset_derived(cq: &ConsumeQueueStore, index: &MessageIndex, c: &Checkpoint) -> Result<(), SmOpenError> {
    let cq_err = |e: raftmq_store::consume_queue::CqError| SmOpenError::Cq(e.to_string());
    let nexts: std::collections::HashMap<(&str, i32), i64> =
        c.queues.iter().map(|n| ((n.topic.as_str(), n.queue_id), n.next_offset)).collect();
    for (t, q) in cq.queues() {
        if !nexts.contains_key(&(t.as_str(), q)) {
            cq.reset_queue(&t, q, 0).map_err(cq_err)?;
        }
    }
    for ((t, q), next) in nexts {
        cq.reset_queue(t, q, next).map_err(cq_err)?;
    }
    cq.flush().map_err(cq_err)?;
    index.clear().map_err(|e| SmOpenError::Index(e.to_string()))?;
    index.flush().map_err(|e| SmOpenError::Index(e.to_string()))
}

impl BrokerStateMachine {
    /// Opens the derived stores under `dir` and recovers them to the last checkpoint.
    pub fn open(dir: &Path, log: CommitLog, checkpoint_interval: Duration) -> Result<(Self, Arc<Shared>), SmOpenError> {
        Self::open_with(dir, log, checkpoint_interval, false)
    }

    /// [`open`](Self::open) for the deterministic simulation (`broker/tests/sim`): the index
    /// writer and checkpoints run on the applying task instead of threads, whose progress is
    /// wall-clock time a simulated clock cannot replay. Pair it with a CommitLog on
    /// `BackgroundIo::SimulatedTasks`.
    pub fn open_inline(
        dir: &Path,
        log: CommitLog,
        checkpoint_interval: Duration,
    ) -> Result<(Self, Arc<Shared>), SmOpenError> {
        Self::open_with(dir, log, checkpoint_interval, true)
    }

    fn open_with(
        dir: &Path,
        log: CommitLog,
        checkpoint_interval: Duration,
        inline: bool,
    ) -> Result<(Self, Arc<Shared>), SmOpenError> {
        let cq =
            ConsumeQueueStore::open(&dir.join("cq"), CQ_UNITS_PER_FILE).map_err(|e| SmOpenError::Cq(e.to_string()))?;
        let index = MessageIndex::open(&dir.join("index")).map_err(|e| SmOpenError::Index(e.to_string()))?;
        let checkpoint = CheckpointFile::open(&dir.join("checkpoint"))?;
        let window_runs = WindowRuns::open(&dir.join("window"))?;
        let pins = PinStore::open(&dir.join("pins"))?;
        let purged = log.last_purged().map(|l| l.index);
        let loaded = match checkpoint.load()? {
            Some(c) if ahead_of_log(&c, &log) => {
                checkpoint.set_aside(applied_of(&c).unwrap_or(0))?;
                None
            }
            // An install or a purge the crash interrupted (see the module docs).
            Some(c) if purged.is_some_and(|p| applied_of(&c).is_none_or(|a| a < p)) => None,
            Some(c) => Some(window_runs.resolve(c)?),
            None => None,
        };
        let meta = match loaded {
            None if let Some(purged) = purged => {
                let pin = pins
                    .at_or_before(purged)
                    .filter(|p| p.index == purged)
                    .ok_or(SmOpenError::NoPinAtPurge { applied: None, purged })?;
                let c = pins.load(&pin)?;
                tracing::warn!(pin = pin.index, "recovering from the pinned checkpoint at the purge point");
                reset_derived(&cq, &index, &c)?;
                checkpoint.store(&c)?;
                Meta::from_checkpoint(&c).map_err(|e| SmOpenError::Decode(e.to_string()))?
            }
            Some(c) => {
                let meta = Meta::from_checkpoint(&c).map_err(|e| SmOpenError::Decode(e.to_string()))?;
                let next = |t: &str, q: i32| {
                    c.queues.iter().find(|n| n.topic == t && n.queue_id == q).map(|n| n.next_offset).unwrap_or(0)
                };
                for (t, q) in cq.queues() {
                    cq.truncate_to(&t, q, next(&t, q)).map_err(|e| SmOpenError::Cq(e.to_string()))?;
                }
                for n in &c.queues {
                    if cq.max_offset(&n.topic, n.queue_id) < n.next_offset {
                        return Err(SmOpenError::Cq(format!(
                            "queue {}:{} holds fewer units than checkpointed ({} < {}); its files were lost",
                            n.topic,
                            n.queue_id,
                            cq.max_offset(&n.topic, n.queue_id),
                            n.next_offset
                        )));
                    }
                }
                meta
            }
            None => {
                for (t, q) in cq.queues() {
                    cq.truncate_to(&t, q, 0).map_err(|e| SmOpenError::Cq(e.to_string()))?;
                }
                Meta::default()
            }
        };
        let applied = meta.last_applied.map(|l| l.index).unwrap_or(0);
        let (applied_tx, _) = watch::channel(applied);
        let shared = Arc::new(Shared {
            log,
            cq,
            index: index.clone(),
            meta: RwLock::new(meta),
            applied_tx,
            pins,
            retained_tx: watch::channel(0).0,
            durable_tx: watch::channel(applied).0,
        });
        let sm = Self {
            shared: shared.clone(),
            index_writer: Arc::new(if inline { IndexWriter::inline(index) } else { IndexWriter::start(index) }),
            checkpoint: Arc::new(checkpoint),
            window_runs: Arc::new(window_runs),
            checkpoint_task: None,
            checkpoint_interval,
            last_checkpoint: Instant::now(),
            inline,
            pin_interval: DEFAULT_PIN_INTERVAL,
            last_pin: Instant::now(),
            retain_checkpointed: 0,
        };
        Ok((sm, shared))
    }

    /// Keeps a checkpoint as a pin at most every `interval` (default
    /// [`DEFAULT_PIN_INTERVAL`]): the granularity of retention.
    pub fn with_pin_interval(mut self, interval: Duration) -> Self {
        self.pin_interval = interval;
        self
    }

    /// Whether the checkpoint being taken is also to be pinned.
    fn pin_due(&mut self) -> bool {
        let due = self.last_pin.elapsed() >= self.pin_interval;
        if due {
            self.last_pin = Instant::now();
        }
        due
    }

    /// Waits for the background checkpoint, if one is being written.
    fn join_checkpoint(&mut self) -> io::Result<()> {
        match self.checkpoint_task.take() {
            Some(task) => task.join().map_err(|_| io::Error::other("the checkpoint thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Captures the state applied so far and makes it durable in the
    /// background: flush the CommitLog, flush the index, fsync the consume
    /// queues, then replace the checkpoint file. The capture is cheap; the fsyncs stay off the apply path.
    /// A failure of the previous checkpoint is returned here (it is fatal: the
    /// replica stops rather than run with derived state it cannot persist).
    fn start_checkpoint(&mut self) -> io::Result<()> {
        if let Some(task) = self.checkpoint_task.take() {
            if !task.is_finished() {
                self.checkpoint_task = Some(task);
                return Ok(());
            }
            task.join().map_err(|_| io::Error::other("the checkpoint thread panicked"))??;
        }
        let c = self.capture();
        let pin = self.pin_due();
        let (index, shared, file) = (self.index_writer.clone(), self.shared.clone(), self.checkpoint.clone());
        // A pin is handed to other replicas as it is: it carries the whole window itself.
        let runs = (!pin).then(|| self.window_runs.clone());
        self.checkpoint_task = Some(std::thread::Builder::new().name("raftmq-checkpoint".into()).spawn(move || {
            // openraft may apply an entry once a quorum holds it, before this
            // replica's own fdatasync of it: the checkpoint must not name
            // entries the log could still lose (I21), so the log goes first.
            futures::executor::block_on(shared.log.flush()).map_err(io::Error::other)?;
            write_checkpoint(&shared, &index, &file, c, runs.as_deref(), pin)
        })?);
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// The same checkpoint, written on the applying task ([`open_inline`](Self::open_inline)).
    async fn checkpoint_inline(&mut self) -> io::Result<()> {
        let pin = self.pin_due();
        let runs = (!pin).then_some(&*self.window_runs);
        let captured = self.capture();
        self.last_checkpoint = Instant::now();
        self.shared.log.flush().await.map_err(io::Error::other)?; // I21, as above
        write_checkpoint(&self.shared, &self.index_writer, &self.checkpoint, captured, runs, pin)
    }

    /// Installs the pinned checkpoint `c` a leader sent (see the module docs for the order).
    fn install(&mut self, last: LogId, c: &Checkpoint) -> Result<(), SmOpenError> {
        let pin_err = |e: String| SmOpenError::Pin(e);
        if applied_of(c) != Some(last.index) {
            return Err(pin_err(format!("snapshot {last} carries the state at {:?}", applied_of(c))));
        }
        // Nothing older may land after the reset: the background checkpoint and the index writer finish first.
        self.join_checkpoint().map_err(|e| pin_err(e.to_string()))?;
        self.index_writer.flush().map_err(|e| SmOpenError::Index(e.to_string()))?;
        let shared = &self.shared;
        shared.pins.store(c)?;
        shared.log.reset_to_snapshot(last, c.next_position).map_err(|e| pin_err(e.to_string()))?;
        reset_derived(&shared.cq, &shared.index, c)?;
        let meta = Meta::from_checkpoint(c).map_err(|e| SmOpenError::Decode(e.to_string()))?;
        *shared.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
        self.checkpoint.store(c)?;
        shared.applied_tx.send_replace(last.index);
        shared.durable_tx.send_replace(last.index);
        shared.retained_changed();
        Ok(())
    }

    /// The snapshot for the newest pin at or before the retention boundary.
    fn pinned_snapshot(&self) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotData>>> {
        let boundary = self.shared.meta().retained.index;
        pinned_snapshot(&self.shared, boundary)
    }

    /// The state applied so far, captured for a checkpoint (cheap: see [`Meta::capture`]).
    pub(crate) fn capture(&self) -> Captured {
        let queues = self
            .shared
            .cq
            .queues()
            .into_iter()
            .map(|(topic, queue_id)| {
                let next_offset = self.shared.cq.max_offset(&topic, queue_id);
                QueueNext { topic, queue_id, next_offset }
            })
            .collect();
        self.shared.meta().capture(queues)
    }
}

impl RaftStateMachine<TypeConfig> for BrokerStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = PinnedSnapshot;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let m = self.shared.meta();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let mut index_out = Vec::new();
        let mut last = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let idx = entry.log_id.index;
            let result = {
                let mut meta = self.shared.meta.write().unwrap_or_else(|p| p.into_inner());
                let result = match &entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(m) => {
                        meta.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        None
                    }
                    EntryPayload::Normal(cmd) => {
                        Some(apply::apply_normal(&self.shared, &mut meta, &entry.log_id, &cmd.0, &mut index_out)?)
                    }
                };
                meta.last_applied = Some(entry.log_id);
                result
            };
            if let Some(r) = responder {
                r.send(apply::reply(idx, result.unwrap_or(raftmq_proto::broker::command_reply::Result::Ok(true))));
            }
            last = Some(idx);
        }
        if let Some(idx) = last {
            let end = self.shared.log.record_end(idx);
            let retained = {
                let mut meta = self.shared.meta.write().unwrap_or_else(|p| p.into_inner());
                if let Some(end) = end {
                    meta.next_position = end;
                }
                meta.retained.applied_at
            };
            self.index_writer.submit(std::mem::take(&mut index_out), idx);
            self.shared.applied_tx.send_replace(idx);
            // A `Retain` is checkpointed at once: the log is purged only behind
            // a durable checkpoint that covers it (retention.rs), and a quiet
            // group might otherwise write none for a long time.
            let retain_pending = retained > self.retain_checkpointed;
            if retain_pending || self.last_checkpoint.elapsed() >= self.checkpoint_interval {
                if retain_pending {
                    self.join_checkpoint()?;
                    self.retain_checkpointed = retained;
                }
                if self.inline {
                    self.checkpoint_inline().await?;
                } else {
                    self.start_checkpoint()?;
                }
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<PinnedSnapshot> {
        // A snapshot is never built from the current state: it is the pin at
        // the retention boundary, and there is one only once something expired.
        (self.shared.meta().retained.index > 0).then(|| PinnedSnapshot(Arc::downgrade(&self.shared)))
    }

    async fn get_snapshot_builder(&mut self) -> PinnedSnapshot {
        PinnedSnapshot(Arc::downgrade(&self.shared))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<TypeConfig>, snapshot: SnapshotData) -> io::Result<()> {
        let last = meta.last_log_id.ok_or_else(|| io::Error::other("a snapshot without a last log id"))?;
        let c = Checkpoint::decode(snapshot).map_err(|e| io::Error::other(format!("snapshot {last}: {e}")))?;
        tracing::info!(%last, "installing the leader's pinned checkpoint");
        self.install(last, &c).map_err(io::Error::other)
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotData>>> {
        self.pinned_snapshot()
    }
}

/// The rest of a checkpoint once the CommitLog is flushed (I21), on the background thread or
/// the applying task: encode it (the window's sealed runs into `runs`, if given), flush the
/// index and the consume queues, replace the checkpoint file (and store a pin of it if `pin`),
/// publish it as durable, then retire the window's older side files (I42).
fn write_checkpoint(
    shared: &Shared,
    index: &IndexWriter,
    file: &CheckpointFile,
    captured: Captured,
    runs: Option<&WindowRuns>,
    pin: bool,
) -> io::Result<()> {
    // `c` is the checkpoint without the window's ids: enough for its index and term.
    let (c, payload) = captured.encode(runs).map_err(io::Error::other)?;
    index.flush().map_err(io::Error::other)?;
    shared.cq.flush().map_err(io::Error::other)?;
    file.store_encoded(&payload).map_err(io::Error::other)?;
    if pin {
        shared.pins.store_encoded(&c, &payload).map_err(io::Error::other)?;
    }
    if let Some(applied) = applied_of(&c) {
        shared.durable_tx.send_replace(applied);
    }
    if let (Some(runs), Some(r)) = (runs, &c.window_runs) {
        runs.retire_before(r.generation);
    }
    Ok(())
}

/// The snapshot of the newest pin at or before `boundary`, if any.
fn pinned_snapshot(shared: &Shared, boundary: u64) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotData>>> {
    let Some(pin) = (boundary > 0).then(|| shared.pins.at_or_before(boundary)).flatten() else {
        return Ok(None);
    };
    // The pin's bytes go out as they are; they are decoded only for the snapshot's meta.
    let payload = shared.pins.load_encoded(&pin).map_err(io::Error::other)?;
    let c = Checkpoint::decode(&payload[..]).map_err(|e| io::Error::other(format!("pin {}: {e}", pin.index)))?;
    Ok(Some(snapshot_of(&pin, &c, payload)?))
}

fn snapshot_of(pin: &PinInfo, c: &Checkpoint, payload: Vec<u8>) -> io::Result<SnapshotOf<TypeConfig, SnapshotData>> {
    let decode = |e: conv::DecodeError| io::Error::other(format!("pin {}: {e}", pin.index));
    let membership = match &c.membership {
        Some(m) => conv::membership_from_pb(m).map_err(decode)?,
        None => Default::default(),
    };
    let membership_log_id = conv::opt_log_id_from_pb(c.membership_log_id.as_ref());
    let last = conv::opt_log_id_from_pb(c.last_applied.as_ref());
    Ok(SnapshotOf::<TypeConfig, SnapshotData> {
        meta: openraft::SnapshotMeta {
            last_log_id: last,
            last_membership: StoredMembership::new(membership_log_id, membership),
        },
        snapshot: payload.into(),
    })
}

/// Hands out the checkpoint pinned at the retention boundary. Weak: openraft
/// may keep a builder past the replica's stop, and it must not keep the stores open.
pub struct PinnedSnapshot(std::sync::Weak<Shared>);

impl RaftSnapshotBuilder<TypeConfig> for PinnedSnapshot {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, SnapshotData>> {
        let shared = self.0.upgrade().ok_or_else(|| io::Error::other("the state machine stopped"))?;
        let boundary = shared.meta().retained.index;
        pinned_snapshot(&shared, boundary)?.ok_or_else(|| {
            io::Error::other(format!(
                "no pinned checkpoint at or before the retention boundary {boundary}: nothing to snapshot yet"
            ))
        })
    }
}
