//! Physical layout: segment rolls with Pad records, reads across segments, the read byte cap,
//! truncation that reproduces the positions of a log that never had the conflicting tail,
//! whole-segment purge, `set_base`, and append validation.

use openraft::RaftLogReader;
use openraft::storage::RaftLogStorage;
use raftmq_raft::EntryPayload;
use raftmq_store::commitlog::{CommitLog, CommitLogConfig, StoreError};
use raftmq_store::testkit::*;
use tempfile::TempDir;

/// Record length of a Normal entry with a `len`-byte Cmd.
const fn rec(len: usize) -> u64 {
    (CommitLog::RECORD_HEADER_LEN + len) as u64
}

/// Body sizes that vary so rolls happen at irregular places.
fn varying(term: u64, from: u64, to: u64) -> Vec<raftmq_raft::Entry> {
    (from..=to).map(|i| normal(term, i, 3000 + (i as usize * 7919) % 5000)).collect()
}

#[tokio::test]
async fn roll_writes_a_pad_and_reads_cross_segments() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    let entries = normals(1, 1, 10, 10_000);
    append(&mut log, entries.clone()).await.unwrap();

    // Six records fit in 64 KiB; the seventh starts the next segment after a Pad.
    let six = 6 * rec(10_000);
    assert_eq!(log.record_position(6), Some(5 * rec(10_000)));
    assert_eq!(log.record_position(7), Some(SEG));
    let pad = log.read_bytes(six, 32).unwrap();
    assert_eq!(u32::from_le_bytes(pad[0..4].try_into().unwrap()) as u64, SEG - six);
    assert_eq!(pad[8], 4, "kind = Pad");

    assert_eq!(read_all(&mut log).await, entries);
    assert_eq!(log.try_get_log_entries(5..8).await.unwrap(), entries[4..7].to_vec());
    settle().await;
    assert_eq!(&segment_files(dir.path())[..2], ["00000000000000000000", "00000000000000065536"]);

    // Zero-copy: the entry body and the consumer read are the same mapped bytes.
    let pos = log.record_position(8).unwrap() + CommitLog::RECORD_HEADER_LEN as u64;
    let raw = log.read_bytes(pos, 10_000).unwrap();
    let got = log.try_get_log_entries(8..9).await.unwrap();
    let EntryPayload::Normal(cmd) = &got[0].payload else { panic!("normal entry expected") };
    assert_eq!(cmd.0, raw);
    assert_eq!(cmd.0.as_ptr(), raw.as_ptr());

    // Reopen sees the same layout.
    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, entries);
    assert_eq!(log.record_position(7), Some(SEG));
}

#[tokio::test]
async fn limited_reads_are_byte_capped_but_never_empty() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), CommitLogConfig { max_read_bytes: 25_000, ..cfg() }).await;
    append(&mut log, normals(1, 1, 10, 10_000)).await.unwrap();
    assert_eq!(indexes(&log.limited_get_log_entries(1, 11).await.unwrap()), [1, 2]);
    assert_eq!(indexes(&log.limited_get_log_entries(9, 100).await.unwrap()), [9, 10]);
    let mut tiny = open(TempDir::new().unwrap().path(), CommitLogConfig { max_read_bytes: 1, ..cfg() }).await;
    append(&mut tiny, normals(1, 1, 3, 100)).await.unwrap();
    assert_eq!(indexes(&tiny.limited_get_log_entries(1, 4).await.unwrap()), [1]);
    // The uncapped reader returns everything.
    assert_eq!(log.try_get_log_entries(1..11).await.unwrap().len(), 10);
}

#[tokio::test]
async fn truncate_then_reappend_is_byte_identical_to_a_log_without_the_tail() {
    let (da, db) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut a = open(da.path(), cfg()).await;
    let mut b = open(db.path(), cfg()).await;

    append(&mut a, varying(1, 1, 20)).await.unwrap();
    // A conflicting uncommitted tail long enough to roll into later segments.
    append(&mut a, varying(2, 21, 45)).await.unwrap();
    a.truncate_after(Some(log_id(1, 20))).await.unwrap();
    assert_eq!(a.last_log_id(), Some(log_id(1, 20)));
    append(&mut a, varying(3, 21, 32)).await.unwrap();

    append(&mut b, varying(1, 1, 20)).await.unwrap();
    append(&mut b, varying(3, 21, 32)).await.unwrap();

    for i in 1..=32 {
        assert_eq!(a.record_position(i), b.record_position(i), "position of {i}");
    }
    assert_eq!(a.prefix_crc(32).unwrap(), b.prefix_crc(32).unwrap());
    assert_eq!(read_all(&mut a).await, read_all(&mut b).await);

    // Recovery must not resurrect the stale tail behind the new records.
    drop(a);
    let mut a = open(da.path(), cfg()).await;
    assert_eq!(a.last_log_id(), Some(log_id(3, 32)));
    assert_eq!(a.prefix_crc(32).unwrap(), b.prefix_crc(32).unwrap());
    assert_eq!(read_all(&mut a).await, read_all(&mut b).await);
}

#[tokio::test]
async fn truncate_to_a_segment_start_keeps_that_segment_empty() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 10, 10_000)).await.unwrap();
    assert_eq!(log.record_position(7), Some(SEG));
    log.truncate_after(Some(log_id(1, 6))).await.unwrap();
    assert_eq!(log.end_position(), SEG);
    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.last_log_id(), Some(log_id(1, 6)));
    append(&mut log, normals(2, 7, 1, 10)).await.unwrap();
    assert_eq!(log.record_position(7), Some(SEG));
}

#[tokio::test]
async fn purge_unlinks_whole_segments_only_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 20, 10_000)).await.unwrap(); // 6 per segment: 4 segments
    assert_eq!(log.record_position(13), Some(2 * SEG));

    // Entry 9 is in segment 1 (entries 7..=12): only segment 0 goes.
    log.purge(log_id(1, 9)).await.unwrap();
    settle().await;
    let files = segment_files(dir.path());
    assert!(!files.contains(&"00000000000000000000".to_string()), "{files:?}");
    assert!(files.contains(&"00000000000000065536".to_string()), "{files:?}");
    assert_eq!(log.first_index(), Some(10));
    assert_eq!(indexes(&read_all(&mut log).await), (10..=20).collect::<Vec<_>>());
    let crc = log.prefix_crc(20).unwrap();
    assert_eq!(crc.0, log.record_position(20).unwrap() + rec(10_000) - SEG);

    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 9)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20)));
    assert_eq!(log.first_index(), Some(10));
    assert_eq!(log.prefix_crc(20).unwrap(), crc);

    // Purge past the end: the active segment stays, the next entry continues the positions.
    let end = log.end_position();
    log.purge(log_id(1, 100)).await.unwrap();
    assert_eq!(log.first_index(), None);
    assert_eq!(log.last_log_id(), Some(log_id(1, 100)));
    append(&mut log, vec![normal(2, 101, 10)]).await.unwrap();
    assert_eq!(log.record_position(101), Some(end));
    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(indexes(&read_all(&mut log).await), [101]);
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(1, 100)));
}

#[tokio::test]
async fn set_base_places_the_next_entry_and_persists() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 3, 100)).await.unwrap();
    assert!(matches!(log.set_base(50, 0), Err(StoreError::NotEmpty { .. })));
    log.purge(log_id(1, 1000)).await.unwrap();
    let pos = 3 * SEG + 100;
    log.set_base(1001, pos).unwrap();
    log.set_base(1001, pos).unwrap(); // re-asserting is a no-op
    append(&mut log, normals(5, 1001, 5, 1000)).await.unwrap();
    assert_eq!(log.record_position(1001), Some(pos));
    settle().await;
    assert_eq!(segment_files(dir.path())[0], "00000000000000196608");

    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.record_position(1001), Some(pos));
    assert_eq!(indexes(&read_all(&mut log).await), (1001..=1005).collect::<Vec<_>>());
    assert_eq!(log.prefix_crc(1001).unwrap().0, rec(1000));
}

#[tokio::test]
async fn reset_to_snapshot_drops_a_lagging_log_and_is_idempotent() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 3, 100)).await.unwrap();
    let pos = 2 * SEG + 40;
    log.reset_to_snapshot(log_id(2, 500), pos).unwrap();
    log.reset_to_snapshot(log_id(2, 500), pos).unwrap(); // a crashed install, done again
    assert_eq!((log.first_index(), log.last_purged()), (None, Some(log_id(2, 500))));
    append(&mut log, normals(3, 501, 2, 100)).await.unwrap();
    assert_eq!(log.record_position(501), Some(pos));
    settle().await;
    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.record_position(501), Some(pos));
    assert_eq!(indexes(&read_all(&mut log).await), vec![501, 502]);
}

#[tokio::test]
async fn append_validation() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    let max = cfg().max_entry_bytes() as usize;
    assert!(append(&mut log, vec![normal(1, 1, max + 1)]).await.is_err());
    append(&mut log, vec![normal(1, 1, max)]).await.unwrap(); // fills a segment exactly
    append(&mut log, vec![normal(1, 2, 10)]).await.unwrap();
    assert_eq!(log.record_position(2), Some(SEG));
    assert!(append(&mut log, vec![normal(1, 4, 10)]).await.is_err(), "gap");
    assert!(append(&mut log, vec![normal(0, 3, 10)]).await.is_err(), "term going back");
    assert!(!log.is_poisoned(), "caller mistakes do not poison");
    append(&mut log, vec![membership(2, 3, &[1, 2, 3]), blank(2, 4)]).await.unwrap();
    let before = read_all(&mut log).await;
    drop(log);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, before);
}

#[tokio::test]
async fn config_validation_and_size_change_are_refused() {
    assert!(CommitLogConfig { segment_bytes: 1000, ..cfg() }.validate().is_err());
    assert!(CommitLogConfig { segment_bytes: 4096 * 3 + 1, ..cfg() }.validate().is_err());
    assert!(CommitLogConfig { max_read_bytes: 0, ..cfg() }.validate().is_err());
    assert!(CommitLogConfig::default().validate().is_ok());
    assert_eq!(CommitLogConfig::default().max_entry_bytes(), (128 << 20) - 32);

    let dir = TempDir::new().unwrap();
    drop(open(dir.path(), cfg()).await);
    let other = CommitLogConfig { segment_bytes: 2 * SEG, ..cfg() };
    let res = CommitLog::open(dir.path(), other, std::sync::Arc::new(raftmq_store::io::RealIo)).await;
    assert!(matches!(res, Err(StoreError::Corrupt { .. })), "{:?}", res.err());
}
