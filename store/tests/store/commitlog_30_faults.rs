//! Injected faults through `FaultyIo`: lost unsynced writes, torn writes, failed fsyncs, and
//! the ordering of `save_vote` behind queued appends. Every scenario ends by reopening the
//! directory with the real backend, as a restarted broker would.

use std::sync::Arc;
use std::time::Duration;

use openraft::RaftLogReader;
use openraft::storage::RaftLogStorage;
use raftmq_raft::Vote;
use raftmq_store::commitlog::CommitLog;
use raftmq_store::io::FaultyIo;
use raftmq_store::testkit::*;
use tempfile::TempDir;

async fn open_faulty(dir: &std::path::Path, cfg: raftmq_store::commitlog::CommitLogConfig) -> (CommitLog, FaultyIo) {
    let faulty = FaultyIo::new();
    (open_with(dir, cfg, Arc::new(faulty.clone())).await, faulty)
}

/// The recovered log is exactly `expected` (a prefix of what was appended).
async fn assert_recovers(dir: &std::path::Path, expected: &[raftmq_raft::Entry]) -> CommitLog {
    let mut log = open(dir, cfg()).await;
    assert_eq!(read_all(&mut log).await, expected);
    log
}

#[tokio::test]
async fn unsynced_appends_are_lost_on_crash_but_acknowledged_ones_survive() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    let entries = varied(40);

    // Phase 1: acknowledged (synced) appends, spanning a segment roll.
    append_acked(&mut log, &entries[..25]).await;

    // Phase 2: written but not yet durable: readable at once, callbacks still pending.
    faulty.pause_syncs();
    let mut pending = append_pending(&mut log, &entries[25..]).await;
    assert_eq!(read_all(&mut log).await, entries);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(pending[0].try_recv().is_err(), "no ack before the sync");

    // Phase 3: power loss. The pending callbacks fail; the unsynced bytes are gone.
    faulty.crash().unwrap();
    for rx in pending {
        assert!(rx.await.unwrap().is_err());
    }
    drop(log);

    let mut log = assert_recovers(dir.path(), &entries[..25]).await;
    append(&mut log, entries[25..].to_vec()).await.unwrap();
    drop(log);
    assert_recovers(dir.path(), &entries).await;
}

#[tokio::test]
async fn acknowledged_prefix_survives_crashes_at_varying_points() {
    // Deterministic "random" schedule: batch sizes and the crash point vary per round.
    for round in 0..6u64 {
        let dir = TempDir::new().unwrap();
        let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
        let mut next = 1;
        let mut acked = Vec::new();
        for b in 0..(3 + round) {
            let batch = normals(1, next, 1 + (b * 7 + round) % 6, 2000 + ((round * 131 + b * 17) % 9) as usize * 700);
            next += batch.len() as u64;
            append(&mut log, batch.clone()).await.unwrap();
            acked.extend(batch);
        }
        faulty.pause_syncs();
        let unacked = normals(1, next, 4 + round, 1500);
        let _rx = append_nowait(&mut log, unacked).await.unwrap();
        faulty.crash().unwrap();
        drop(log);

        let mut log = open(dir.path(), cfg()).await;
        let got = read_all(&mut log).await;
        assert_eq!(got, acked, "round {round}: exactly the acknowledged prefix");
        append(&mut log, vec![normal(2, next, 10)]).await.unwrap();
    }
}

#[tokio::test]
async fn torn_write_drops_the_torn_record_and_everything_after() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    let acked = normals(1, 1, 10, 1000);
    append(&mut log, acked.clone()).await.unwrap();

    // The batch 11..=15 is one pwrite; record 11 (1032 bytes) lands whole, 12 is cut at 40.
    let batch = normals(1, 11, 5, 1000);
    faulty.tear_next_write(1032 + 40);
    let res = append_nowait(&mut log, batch.clone()).await;
    assert!(res.is_err(), "the torn pwrite fails the append");
    assert!(log.is_poisoned());
    drop(log);

    // Record 11 was written in full: keeping it is allowed (it was never acknowledged, and
    // it is no gap). Record 12 is torn: it and everything after it are gone.
    let mut expected = acked.clone();
    expected.push(batch[0].clone());
    let mut log = assert_recovers(dir.path(), &expected).await;
    // The torn header was zeroed, so a second open agrees, and appends continue in place.
    let pos12 = log.end_position();
    append(&mut log, batch[1..].to_vec()).await.unwrap();
    assert_eq!(log.record_position(12), Some(pos12));
    drop(log);
    expected.extend(batch[1..].iter().cloned());
    assert_recovers(dir.path(), &expected).await;
}

#[tokio::test]
async fn torn_header_is_dropped() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    let acked = normals(1, 1, 3, 100);
    append(&mut log, acked.clone()).await.unwrap();
    faulty.tear_next_write(12); // len, crc and kind only
    assert!(append_nowait(&mut log, normals(1, 4, 1, 100)).await.is_err());
    drop(log);
    assert_recovers(dir.path(), &acked).await;
}

#[tokio::test]
async fn failed_fsync_poisons_the_log() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 5, 100)).await.unwrap();

    faulty.fail_next_sync();
    let rx = append_nowait(&mut log, normals(1, 6, 2, 100)).await.unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("log poisoned"), "{err}");
    assert!(log.is_poisoned());

    // Every later write is refused; nothing retries the fsync.
    let syncs = faulty.sync_count();
    let err = append(&mut log, normals(1, 8, 1, 100)).await.unwrap_err();
    assert!(err.to_string().contains("log poisoned"), "{err}");
    assert!(log.save_vote(&Vote::new(2, 1)).await.is_err());
    assert!(log.truncate_after(Some(log_id(1, 3))).await.is_err());
    assert!(log.purge(log_id(1, 2)).await.is_err());
    assert!(log.set_base(100, 0).is_err());
    assert_eq!(faulty.sync_count(), syncs);
    // Reads still work (the data is in the page cache; its durability is what is unknown).
    assert_eq!(log.try_get_log_entries(1..6).await.unwrap().len(), 5);
}

#[tokio::test]
async fn failed_meta_fsync_in_save_vote_poisons() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 2, 100)).await.unwrap();
    faulty.fail_next_sync();
    assert!(log.save_vote(&Vote::new(3, 1)).await.is_err());
    assert!(log.is_poisoned());
}

#[tokio::test]
async fn save_vote_waits_for_queued_appends() {
    let dir = TempDir::new().unwrap();
    let (mut log, faulty) = open_faulty(dir.path(), cfg()).await;
    let entries = normals(2, 1, 10, 500);
    let vote = Vote::new_committed(2, 1);

    faulty.pause_syncs();
    let _rx = append_nowait(&mut log, entries.clone()).await.unwrap();
    {
        let mut voter = log.clone();
        let save = voter.save_vote(&vote);
        tokio::pin!(save);
        // The vote must not become durable ahead of the entries queued before it.
        assert!(tokio::time::timeout(Duration::from_millis(100), &mut save).await.is_err());
        assert_eq!(log.read_vote().await.unwrap(), None);
        faulty.resume_syncs();
        save.await.unwrap();
    }
    faulty.crash().unwrap();
    drop(log);

    let mut log = assert_recovers(dir.path(), &entries).await;
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn async_durability_acks_before_sync_and_flush_makes_durable() {
    let dir = TempDir::new().unwrap();
    let faulty = FaultyIo::new();
    let mut log = open_with(dir.path(), async_cfg(Duration::from_secs(3600)), Arc::new(faulty.clone())).await;
    faulty.pause_syncs();
    let durable = normals(1, 1, 5, 100);
    append(&mut log, durable.clone()).await.unwrap(); // acked with syncs paused
    faulty.resume_syncs();
    log.flush().await.unwrap();
    append(&mut log, normals(1, 6, 5, 100)).await.unwrap();
    faulty.crash().unwrap();
    drop(log);
    // Within the flush interval, acknowledged entries may be lost: that is the policy.
    assert_recovers(dir.path(), &durable).await;
}
