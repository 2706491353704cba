//! Recovery of torn files, tested against hand-made segment files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::*;

fn unit(n: u64) -> CqUnit {
    CqUnit { position: n * 100, size: 100, tag_hash: n, store_timestamp_ms: 1_000 + i64::try_from(n).unwrap_or(0) }
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).expect("open segment");
    f.write_all(bytes).expect("append");
}

fn queue_dir(root: &Path) -> std::path::PathBuf {
    root.join("t").join("0")
}

#[test]
fn trailing_partial_unit_and_zero_units_are_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 10).expect("open");
        for n in 0..3 {
            store.append("t", 0, unit(n)).expect("append");
        }
    }
    let seg = queue_dir(tmp.path()).join(format!("{:020}", 0));
    append_raw(&seg, &[0u8; UNIT_SIZE * 2]);
    append_raw(&seg, &unit(9).to_bytes()[..13]);

    let store = ConsumeQueueStore::open(tmp.path(), 10).expect("reopen");
    assert_eq!(store.max_offset("t", 0), 3);
    assert_eq!(fs::metadata(&seg).expect("meta").len(), 3 * UNIT_SIZE as u64, "the torn tail is cut off the file");
    assert_eq!(store.append("t", 0, unit(3)).expect("append"), 3);
    let units: Vec<CqUnit> = store.read("t", 0, 0, 10).expect("read").into_iter().map(|(_, u)| u).collect();
    assert_eq!(units, (0..4).map(unit).collect::<Vec<_>>());
}

#[test]
fn a_short_middle_segment_ends_the_queue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        for n in 0..10 {
            store.append("t", 0, unit(n)).expect("append");
        }
    }
    // A crash lost the end of segment 4 but kept segment 8.
    let dir = queue_dir(tmp.path());
    let seg4 = dir.join(format!("{:020}", 4));
    let f = OpenOptions::new().write(true).open(&seg4).expect("open");
    f.set_len(2 * UNIT_SIZE as u64).expect("shorten");

    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(store.max_offset("t", 0), 6);
    assert!(!dir.join(format!("{:020}", 8)).exists());
}

#[test]
fn a_missing_middle_segment_ends_the_queue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        for n in 0..10 {
            store.append("t", 0, unit(n)).expect("append");
        }
    }
    let dir = queue_dir(tmp.path());
    fs::remove_file(dir.join(format!("{:020}", 4))).expect("remove");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(store.min_offset("t", 0), 0);
    assert_eq!(store.max_offset("t", 0), 4);
}

#[test]
fn a_changed_units_per_file_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        for n in 0..6 {
            store.append("t", 0, unit(n)).expect("append");
        }
    }
    assert!(matches!(ConsumeQueueStore::open(tmp.path(), 3), Err(CqError::InvalidConfig(_))));
    assert!(matches!(ConsumeQueueStore::open(tmp.path(), 0), Err(CqError::InvalidConfig(_))));
}

#[test]
fn stray_entries_are_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        store.append("t", 0, unit(0)).expect("append");
    }
    fs::create_dir_all(tmp.path().join("not.escaped")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("t").join("007")).expect("mkdir");
    append_raw(&queue_dir(tmp.path()).join("notes.txt"), b"hello");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(store.queues(), vec![("t".to_owned(), 0)]);
    assert_eq!(store.max_offset("t", 0), 1);
}
