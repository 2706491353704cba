//! openraft's own log-storage conformance suite against the CommitLog.
//!
//! The suite also drives a state machine; [`MemSm`] is the smallest one that satisfies it
//! (applied log id, last membership, a metadata-only snapshot). It exists for this test only.

use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::alias::SnapshotOf;
use openraft::{OptionalSend, StorageError};
use raftmq_raft::{CommandReply, EntryPayload, LogId, SnapshotMeta, StoredMembership, TypeConfig};
use raftmq_store::commitlog::{CommitLog, CommitLogConfig, Durability};
use raftmq_store::io::RealIo;
use tempfile::TempDir;

#[derive(Default)]
struct SmState {
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<SnapshotMeta>,
}

#[derive(Clone, Default)]
struct MemSm(Arc<Mutex<SmState>>);

impl RaftSnapshotBuilder<TypeConfig> for MemSm {
    type SnapshotData = ();

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, ()>, io::Error> {
        let mut st = self.0.lock().expect("sm lock");
        let meta = SnapshotMeta { last_log_id: st.applied, last_membership: st.membership.clone() };
        st.snapshot = Some(meta.clone());
        Ok(Snapshot { meta, snapshot: () })
    }
}

impl RaftStateMachine<TypeConfig> for MemSm {
    type SnapshotData = ();
    type SnapshotBuilder = MemSm;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let st = self.0.lock().expect("sm lock");
        Ok((st.applied, st.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            {
                let mut st = self.0.lock().expect("sm lock");
                st.applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    st.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(r) = responder {
                r.send(CommandReply::default());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, _snapshot: ()) -> Result<(), io::Error> {
        let mut st = self.0.lock().expect("sm lock");
        st.applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        st.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, ()>>, io::Error> {
        let st = self.0.lock().expect("sm lock");
        Ok(st.snapshot.clone().map(|meta| Snapshot { meta, snapshot: () }))
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, CommitLog, MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, CommitLog, MemSm), StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("tempdir");
        // 64 KiB segments, so the suite's logs roll over segments too.
        let cfg = CommitLogConfig {
            segment_bytes: 64 * 1024,
            durability: Durability::Sync,
            max_read_bytes: 4 << 20,
            background_io: Default::default(),
        };
        let log = CommitLog::open(dir.path(), cfg, Arc::new(RealIo)).await.expect("open");
        Ok((dir, log, MemSm::default()))
    }
}

// Paused time: the suite sleeps 1 s in several cases to let purges settle; ours are
// synchronous, so the clock can jump instead.
#[tokio::test(start_paused = true)]
async fn openraft_log_storage_suite() {
    Suite::test_all(Builder).await.expect("openraft log storage suite");
}
