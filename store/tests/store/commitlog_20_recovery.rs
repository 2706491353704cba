//! Recovery on open, against golden fixture directories committed under `tests/fixtures/`
//! (64 KiB segments), and against directories damaged on purpose.
//!
//! The fixtures are produced by [`generate`]; `generated_fixtures_match_committed_bytes`
//! regenerates them into a temporary directory and compares every byte, so an accidental
//! format change fails here. After an intentional change, regenerate with
//! `RAFTMQ_REGENERATE_FIXTURES=1 cargo test -p raftmq-store --test commitlog_20_recovery generated_fixtures`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::RaftLogReader;
use openraft::storage::RaftLogStorage;
use raftmq_raft::{Entry, Vote};
use raftmq_store::commitlog::{CommitLog, StoreError};
use raftmq_store::io::{FaultyIo, RealIo};
use raftmq_store::testkit::*;
use tempfile::TempDir;

const FIXTURES: [&str; 4] = ["clean", "torn_tail", "bad_crc", "bad_crc_middle"];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The 40 entries of `clean/`: a membership, normals of varying size, a blank at a term
/// change. About 180 KiB, so three 64 KiB segments.
fn fixture_entries() -> Vec<Entry> {
    let size = |i: u64| 1500 + (i as usize * 2713) % 6000;
    let mut v = vec![membership(1, 1, &[1, 2, 3])];
    v.extend((2..=30).map(|i| normal(1, i, size(i))));
    v.push(blank(2, 31));
    v.extend((32..=40).map(|i| normal(2, i, size(i))));
    v
}

fn fixture_vote() -> Vote {
    Vote::new_committed(2, 1)
}

/// Removes segment files after the one holding `last_pos` (the allocator's unused spare).
fn remove_spares(dir: &Path, last_pos: u64) {
    for name in segment_files(dir) {
        if name.parse::<u64>().expect("fixture generation") > last_pos - last_pos % SEG {
            std::fs::remove_file(dir.join(name)).expect("fixture generation");
        }
    }
}

fn flip_byte(dir: &Path, pos: u64) {
    let path = dir.join(format!("{:020}", pos - pos % SEG));
    let mut bytes = std::fs::read(&path).expect("fixture generation");
    bytes[(pos % SEG) as usize] ^= 0x5a;
    std::fs::write(&path, bytes).expect("fixture generation");
}

/// Writes the four fixture directories under `root`.
async fn generate(root: &Path) {
    let entries = fixture_entries();
    let dir = |name: &str| {
        let d = root.join(name);
        let _ = std::fs::remove_dir_all(&d);
        d
    };

    let clean = dir("clean");
    let mut log = open(&clean, cfg()).await;
    for chunk in entries.chunks(7) {
        append(&mut log, chunk.to_vec()).await.expect("fixture generation");
    }
    log.save_vote(&fixture_vote()).await.expect("fixture generation");
    let pos = |i: u64| log.record_position(i).expect("fixture generation");
    let (last_pos, pos5, pos39) = (pos(40), pos(5), pos(39));
    assert_eq!(pos5 / SEG, 0, "entry 5 is in the first segment");
    assert_eq!(pos39 / SEG, last_pos / SEG, "entry 39 is in the last segment");
    assert_eq!(last_pos / SEG, 2, "three segments");
    drop(log);
    remove_spares(&clean, last_pos);

    // A power cut in the middle of writing entry 41: its first 132 bytes reached the disk.
    let torn = dir("torn_tail");
    copy_dir(&clean, &torn);
    let faulty = FaultyIo::new();
    let mut log = open_with(&torn, cfg(), Arc::new(faulty.clone())).await;
    assert!(log.end_position() + 32 + 200 <= last_pos - last_pos % SEG + SEG, "entry 41 fits");
    faulty.tear_next_write(32 + 100);
    assert!(append_nowait(&mut log, vec![normal(2, 41, 200)]).await.is_err());
    drop(log);
    remove_spares(&torn, last_pos);

    let bad = dir("bad_crc");
    copy_dir(&clean, &bad);
    flip_byte(&bad, pos39 + 32 + 10);

    let bad_middle = dir("bad_crc_middle");
    copy_dir(&clean, &bad_middle);
    flip_byte(&bad_middle, pos5 + 32 + 10);
}

/// A writable copy of a committed fixture.
fn fixture_copy(name: &str) -> TempDir {
    let tmp = TempDir::new().expect("fixture generation");
    copy_dir(&fixtures_root().join(name), tmp.path());
    tmp
}

/// Golden files: the generator must reproduce the committed fixtures byte for
/// byte. After an intentional format change, run this test once with
/// `RAFTMQ_REGENERATE_FIXTURES=1` to rewrite them, then review the diff.
#[tokio::test]
async fn generated_fixtures_match_committed_bytes() {
    if std::env::var_os("RAFTMQ_REGENERATE_FIXTURES").is_some() {
        generate(&fixtures_root()).await;
    }
    let tmp = TempDir::new().unwrap();
    generate(tmp.path()).await;
    for name in FIXTURES {
        let (want, got) = (fixtures_root().join(name), tmp.path().join(name));
        let mut files: Vec<_> = std::fs::read_dir(&want).unwrap().map(|e| e.unwrap().file_name()).collect();
        files.sort();
        let mut gen_files: Vec<_> = std::fs::read_dir(&got).unwrap().map(|e| e.unwrap().file_name()).collect();
        gen_files.sort();
        assert_eq!(files, gen_files, "{name}: file set");
        for f in files {
            let same = std::fs::read(want.join(&f)).unwrap() == std::fs::read(got.join(&f)).unwrap();
            assert!(same, "{name}/{}: bytes differ from the committed fixture", f.to_string_lossy());
        }
    }
}

#[tokio::test]
async fn clean_fixture_recovers_everything() {
    let tmp = fixture_copy("clean");
    let mut log = open(tmp.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, fixture_entries());
    assert_eq!(log.read_vote().await.unwrap(), Some(fixture_vote()));
    assert_eq!(log.last_log_id(), Some(log_id(2, 40)));
    assert_eq!(log.first_index(), Some(1));
}

#[tokio::test]
async fn torn_tail_fixture_recovers_the_prefix_and_stays_recovered() {
    let tmp = fixture_copy("torn_tail");
    let mut log = open(tmp.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, fixture_entries());
    let end = log.end_position();
    drop(log);
    // Recovery zeroed the torn header, so the tail stays dropped.
    let seg = std::fs::read(tmp.path().join(format!("{:020}", end - end % SEG))).unwrap();
    let off = (end % SEG) as usize;
    assert_eq!(&seg[off..off + 32], &[0u8; 32]);

    let mut log = open(tmp.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, fixture_entries());
    append(&mut log, vec![normal(2, 41, 200)]).await.unwrap();
    assert_eq!(log.record_position(41), Some(end));
}

#[tokio::test]
async fn bad_crc_in_the_last_segment_drops_from_there() {
    let tmp = fixture_copy("bad_crc");
    let mut log = open(tmp.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, fixture_entries()[..38]);
}

#[tokio::test]
async fn bad_crc_in_a_middle_segment_refuses_to_open() {
    let tmp = fixture_copy("bad_crc_middle");
    let res = CommitLog::open(tmp.path(), cfg(), Arc::new(RealIo)).await;
    let err = res.err().expect("open must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("later segment holds data"), "{err}");
}

#[tokio::test]
async fn leftovers_are_cleaned_and_gaps_refused() {
    let tmp = fixture_copy("clean");
    std::fs::write(tmp.path().join("00000000000000196608.tmp"), b"half a segment").unwrap();
    std::fs::write(tmp.path().join("00000000000000196608"), vec![0u8; SEG as usize]).unwrap();
    let mut log = open(tmp.path(), cfg()).await;
    assert_eq!(read_all(&mut log).await, fixture_entries());
    drop(log);
    assert!(!tmp.path().join("00000000000000196608.tmp").exists());

    // A missing middle segment is not a torn tail.
    let tmp = fixture_copy("clean");
    std::fs::remove_file(tmp.path().join("00000000000000065536")).unwrap();
    assert!(CommitLog::open(tmp.path(), cfg(), Arc::new(RealIo)).await.is_err());

    // Nor is a segment of the wrong size.
    let tmp = fixture_copy("clean");
    let f = std::fs::OpenOptions::new().write(true).open(tmp.path().join("00000000000000065536")).unwrap();
    f.set_len(SEG / 2).unwrap();
    assert!(CommitLog::open(tmp.path(), cfg(), Arc::new(RealIo)).await.is_err());
}

#[tokio::test]
async fn committed_is_persisted_and_clamped_to_the_recovered_log() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 10, 100)).await.unwrap();
    log.save_committed(Some(log_id(1, 10))).await.unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 10)));
    let pos10 = log.record_position(10).unwrap();
    drop(log); // shutdown persists the pending committed

    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 10)));
    drop(log);

    // Damage entry 10: the saved committed now points past the log and is clamped to 9.
    flip_byte(dir.path(), pos10 + 40);
    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.last_log_id(), Some(log_id(1, 9)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 9)));
}

#[tokio::test]
async fn reopen_preserves_vote_purge_and_positions() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(3, 1, 30, 5000)).await.unwrap();
    log.save_vote(&Vote::new(4, 2)).await.unwrap();
    log.purge(log_id(3, 12)).await.unwrap();
    let positions: Vec<_> = (13..=30).map(|i| log.record_position(i)).collect();
    let crc = log.prefix_crc(30).unwrap();
    drop(log);

    let mut log = open(dir.path(), cfg()).await;
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(3, 12)));
    assert_eq!((13..=30).map(|i| log.record_position(i)).collect::<Vec<_>>(), positions);
    assert_eq!(log.prefix_crc(30).unwrap(), crc);
    assert_eq!(indexes(&read_all(&mut log).await), (13..=30).collect::<Vec<_>>());
}
