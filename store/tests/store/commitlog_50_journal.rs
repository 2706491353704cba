//! `JournalIo` and `replay_undo_journal` (feature `fault-journal`): a process killed with
//! SIGKILL, then its unsynced writes reverted from the undo journal, as the Jepsen
//! `kill-lose-unsynced` nemesis does to a broker. Here the "kill" is dropping every handle
//! without a sync (or `FaultyIo::kill`, which fails every later operation and reverts nothing).

use std::path::Path;
use std::sync::Arc;

use raftmq_store::io::{FaultyIo, IoBackend, JournalIo, replay_undo_journal};
use raftmq_store::testkit::*;
use tempfile::TempDir;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read data file")
}

#[test]
fn a_replayed_file_holds_its_content_at_the_last_sync() {
    let tmp = TempDir::new().unwrap();
    let (data, undo) = (tmp.path().join("seg"), tmp.path().join("undo"));
    let io = JournalIo::new(&undo).unwrap();
    let f = io.create_zeroed(&data, 64).unwrap();
    f.write_at(b"0123456789", 0).unwrap();
    f.write_at(b"abc", 20).unwrap();
    f.sync_data().unwrap();
    let at_sync = read(&data);
    // Overlapping writes: the oldest pre-image of each byte must win.
    f.write_at(b"XXXX", 2).unwrap();
    f.write_at(b"YY", 4).unwrap();
    f.write_at(b"Z", 62).unwrap();
    assert_ne!(read(&data), at_sync, "the page cache holds the unsynced writes");
    drop((f, io));

    // Restarted without a replay (a plain kill -9): the first life's writes are still unsynced.
    let io = JournalIo::new(&undo).unwrap();
    let f = io.open(&data).unwrap();
    f.write_at(b"second life", 30).unwrap();
    drop((f, io));

    let stats = replay_undo_journal(&undo).unwrap();
    assert_eq!((stats.files, stats.records), (1, 4));
    assert_eq!(read(&data), at_sync);
    assert_eq!(replay_undo_journal(&undo).unwrap().records, 0, "a replay consumes the journal");
}

#[test]
fn a_sync_forgets_the_journal_and_a_later_replay_reverts_nothing() {
    let tmp = TempDir::new().unwrap();
    let (data, undo) = (tmp.path().join("seg"), tmp.path().join("undo"));
    let io = JournalIo::new(&undo).unwrap();
    let f = io.create_zeroed(&data, 16).unwrap();
    f.write_at(b"durable", 0).unwrap();
    f.sync_data().unwrap();
    drop((f, io));
    assert_eq!(replay_undo_journal(&undo).unwrap().records, 0);
    assert_eq!(&read(&data)[..7], b"durable");
}

#[tokio::test]
async fn a_commitlog_reopened_after_replay_keeps_every_flushed_entry_and_nothing_else() {
    let tmp = TempDir::new().unwrap();
    let (dir, undo) = (tmp.path().join("commitlog"), tmp.path().join("undo"));
    // FaultyIo underneath only to hold syncs back deterministically; its `kill` reverts nothing.
    let faulty = FaultyIo::new();
    let io = JournalIo::over(&undo, Arc::new(faulty.clone())).unwrap();
    let mut log = open_with(&dir, cfg(), Arc::new(io)).await;
    let entries = varied(40);
    // Acknowledged by the flusher, across a segment roll.
    append_acked(&mut log, &entries[..25]).await;
    // Written, never synced.
    faulty.pause_syncs();
    let pending = append_pending(&mut log, &entries[25..]).await;
    faulty.kill();
    for rx in pending {
        assert!(rx.await.unwrap().is_err(), "nothing unsynced was acknowledged");
    }
    drop(log);
    settle().await;

    // Without the replay the page cache survives the kill: everything is there.
    let kept = tmp.path().join("kept");
    copy_dir(&dir, &kept);
    assert_eq!(read_all(&mut open(&kept, cfg()).await).await, entries);

    let stats = replay_undo_journal(&undo).unwrap();
    assert!(stats.records > 0 && stats.bytes > 0, "{stats:?}");
    let mut log = open(&dir, cfg()).await;
    assert_eq!(read_all(&mut log).await, entries[..25], "exactly what the flusher acknowledged");
    // The recovered log takes the lost entries again, in the same positions.
    append(&mut log, entries[25..].to_vec()).await.unwrap();
    drop(log);
    assert_eq!(read_all(&mut open(&dir, cfg()).await).await, entries);
}
