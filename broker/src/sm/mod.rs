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
//! A snapshot is a metadata checkpoint pinned at the retention boundary, so a
//! lagging replica installs it and then receives every retained entry through
//! normal replication. Until retention purges a segment there is no boundary,
//! openraft never needs a snapshot, and none is built (see ARCHITECTURE.md).

pub mod apply;
pub mod attempts;
pub mod checkpoint;
pub mod dedup;
pub mod delay;
pub mod index_writer;
pub mod pop;
pub mod state;

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use raftmq_proto::broker::{Checkpoint, QueueNext};
use raftmq_raft::{EntryPayload, LogId, SnapshotData, StoredMembership, TypeConfig};
use raftmq_store::commitlog::CommitLog;
use raftmq_store::consume_queue::ConsumeQueueStore;
use raftmq_store::index::MessageIndex;
use tokio::sync::watch;
use tokio::time::Instant;

use self::checkpoint::CheckpointFile;
use self::index_writer::IndexWriter;
use self::state::Meta;

/// Units per consume-queue file: 300k × 28 B ≈ 8 MiB.
const CQ_UNITS_PER_FILE: u64 = 300_000;

/// State the gRPC services read while the state machine writes it.
pub struct Shared {
    pub log: CommitLog,
    pub cq: ConsumeQueueStore,
    pub index: MessageIndex,
    meta: RwLock<Meta>,
    applied_tx: watch::Sender<u64>,
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
}

pub struct BrokerStateMachine {
    shared: Arc<Shared>,
    index_writer: Arc<IndexWriter>,
    checkpoint: Arc<CheckpointFile>,
    /// The checkpoint being written in the background, if any.
    checkpoint_task: Option<std::thread::JoinHandle<io::Result<()>>>,
    checkpoint_interval: Duration,
    /// tokio's clock, so a simulation's paused clock times checkpoints too.
    last_checkpoint: Instant,
    /// Checkpoints written on the applying task (see [`BrokerStateMachine::open_inline`]).
    inline: bool,
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
        "the checkpoint names applied index {applied} but the log ends at {last:?} and was purged up to {purged}: the derived state can be neither trusted nor rebuilt"
    )]
    AheadOfPurgedLog { applied: u64, last: Option<u64>, purged: u64 },
}

/// A replica may apply a committed entry before its own fdatasync of it
/// returns (openraft applies what a quorum holds), and a checkpoint written
/// by an older build (before checkpoints waited for a log flush) can name an
/// applied index the log lost in a power loss. openraft would then try to
/// cover the gap with a snapshot, which this state machine refuses, and the
/// replica could never start. Such a checkpoint is set aside and the state is
/// rebuilt from the log (the lost entries come back from the leader at the
/// same positions), which needs the whole log: it fails if anything was purged.
fn ahead_of_log(c: &Checkpoint, log: &CommitLog) -> Result<bool, SmOpenError> {
    let Some(applied) = c.last_applied.as_ref().map(|l| l.index) else { return Ok(false) };
    let last = log.last_log_id().map(|l| l.index);
    if last.is_some_and(|l| l >= applied) {
        return Ok(false);
    }
    if let Some(purged) = log.last_purged() {
        return Err(SmOpenError::AheadOfPurgedLog { applied, last, purged: purged.index });
    }
    tracing::warn!(
        applied,
        log_end = ?last,
        "the checkpoint is ahead of the recovered log (unsynced entries were lost): rebuilding the state from the log"
    );
    Ok(true)
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
        let loaded = match checkpoint.load()? {
            Some(c) if ahead_of_log(&c, &log)? => {
                checkpoint.set_aside(c.last_applied.as_ref().map_or(0, |l| l.index))?;
                None
            }
            other => other,
        };
        let meta = match loaded {
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
        let shared = Arc::new(Shared { log, cq, index: index.clone(), meta: RwLock::new(meta), applied_tx });
        let sm = Self {
            shared: shared.clone(),
            index_writer: Arc::new(if inline { IndexWriter::inline(index) } else { IndexWriter::start(index) }),
            checkpoint: Arc::new(checkpoint),
            checkpoint_task: None,
            checkpoint_interval,
            last_checkpoint: Instant::now(),
            inline,
        };
        Ok((sm, shared))
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
        let (index, shared, file) = (self.index_writer.clone(), self.shared.clone(), self.checkpoint.clone());
        self.checkpoint_task = Some(std::thread::Builder::new().name("raftmq-checkpoint".into()).spawn(move || {
            // openraft may apply an entry once a quorum holds it, before this
            // replica's own fdatasync of it: the checkpoint must not name
            // entries the log could still lose (I21), so the log goes first.
            futures::executor::block_on(shared.log.flush()).map_err(io::Error::other)?;
            index.flush().map_err(io::Error::other)?;
            shared.cq.flush().map_err(io::Error::other)?;
            file.store(&c).map_err(io::Error::other)
        })?);
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// The same checkpoint, written on the applying task ([`open_inline`](Self::open_inline)).
    async fn checkpoint_inline(&mut self) -> io::Result<()> {
        let c = self.capture();
        self.last_checkpoint = Instant::now();
        self.shared.log.flush().await.map_err(io::Error::other)?; // I21, as above
        self.index_writer.flush().map_err(io::Error::other)?;
        self.shared.cq.flush().map_err(io::Error::other)?;
        self.checkpoint.store(&c).map_err(io::Error::other)
    }

    /// The state applied so far, as a checkpoint.
    fn capture(&self) -> Checkpoint {
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
        self.shared.meta().to_checkpoint(queues)
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
            self.index_writer.submit(std::mem::take(&mut index_out), idx);
            self.shared.applied_tx.send_replace(idx);
            if self.last_checkpoint.elapsed() >= self.checkpoint_interval {
                if self.inline {
                    self.checkpoint_inline().await?;
                } else {
                    self.start_checkpoint()?;
                }
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<PinnedSnapshot> {
        // Snapshots are only needed once retention has purged the log; that is
        // when a pinned checkpoint exists to hand out.
        force.then_some(PinnedSnapshot)
    }

    async fn get_snapshot_builder(&mut self) -> PinnedSnapshot {
        PinnedSnapshot
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<TypeConfig>, _snapshot: SnapshotData) -> io::Result<()> {
        Err(io::Error::other(format!(
            "snapshot {:?} offered, but this broker only installs snapshots pinned at a retention boundary, \
             and retention (log purge) is not enabled in this version",
            meta.last_log_id
        )))
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotData>>> {
        // No segment has been purged, so every replica can catch up from the log.
        Ok(None)
    }
}

/// Hands out the checkpoint pinned at the retention boundary (none until
/// retention purges a segment).
pub struct PinnedSnapshot;

impl RaftSnapshotBuilder<TypeConfig> for PinnedSnapshot {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, SnapshotData>> {
        Err(io::Error::other(
            "no retention boundary: the log has never been purged, so replicas catch up by replication",
        ))
    }
}
