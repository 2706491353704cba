//! Consume queue: offsets, segments, restart, recovery to a checkpoint, retention.

use std::path::Path;

use raftmq_store::consume_queue::{ConsumeQueueStore, CqError, CqUnit, UNIT_SIZE, tag_hash};

fn unit(n: u64) -> CqUnit {
    CqUnit {
        position: 1_000 + n * 64,
        size: 64,
        tag_hash: tag_hash(if n.is_multiple_of(2) { "even" } else { "odd" }),
        store_timestamp_ms: 10_000 + i64::try_from(n).expect("small") * 10,
    }
}

fn fill(store: &ConsumeQueueStore, topic: &str, queue_id: i32, range: std::ops::Range<u64>) {
    for n in range {
        let offset = store.append(topic, queue_id, unit(n)).expect("append");
        assert_eq!(offset, i64::try_from(n).expect("small"), "offsets are contiguous");
    }
}

fn units_from(store: &ConsumeQueueStore, topic: &str, offset: i64, max: usize) -> Vec<i64> {
    store
        .read(topic, 0, offset, max)
        .expect("read")
        .into_iter()
        .map(|(o, u)| {
            assert_eq!(u, unit(u64::try_from(o).expect("offset >= 0")), "unit at {o}");
            o
        })
        .collect()
}

fn segment(dir: &Path, topic_dir: &str, base: i64) -> std::path::PathBuf {
    dir.join(topic_dir).join("0").join(format!("{base:020}"))
}

#[test]
fn append_and_read_across_segment_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (0, 0));
    assert!(store.read("t", 0, 0, 10).expect("read").is_empty());

    fill(&store, "t", 0, 0..11);
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (0, 11));
    assert_eq!(units_from(&store, "t", 0, 100), (0..11).collect::<Vec<_>>());
    assert_eq!(units_from(&store, "t", 3, 6), (3..9).collect::<Vec<_>>());
    assert_eq!(units_from(&store, "t", 10, 5), vec![10]);
    assert!(units_from(&store, "t", 11, 5).is_empty());
    assert!(units_from(&store, "t", 3, 0).is_empty());
    for base in [0, 4, 8] {
        assert!(segment(tmp.path(), "t", base).exists(), "segment {base}");
    }
    let len = std::fs::metadata(segment(tmp.path(), "t", 4)).expect("meta").len();
    assert_eq!(len, 4 * UNIT_SIZE as u64);
    // Other queues are independent.
    assert_eq!(store.append("t", 1, unit(0)).expect("append"), 0);
    assert_eq!(store.max_offset("t", 1), 1);
    assert_eq!(store.queues(), vec![("t".to_owned(), 0), ("t".to_owned(), 1)]);
}

#[test]
fn reopen_after_restart_keeps_offsets_and_units() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        fill(&store, "t", 0, 0..8); // exactly two full segments
        store.flush().expect("flush");
    }
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(store.max_offset("t", 0), 8);
    fill(&store, "t", 0, 8..10);
    drop(store);
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(units_from(&store, "t", 0, 100), (0..10).collect::<Vec<_>>());
}

#[test]
fn truncate_to_a_checkpoint_then_redispatch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    fill(&store, "t", 0, 0..11);

    store.truncate_to("t", 0, 5).expect("truncate");
    assert_eq!(store.max_offset("t", 0), 5);
    assert_eq!(units_from(&store, "t", 0, 100), (0..5).collect::<Vec<_>>());
    assert!(!segment(tmp.path(), "t", 8).exists());

    // Re-applying the log: surviving units are no-ops, then appends resume.
    store.append_at("t", 0, 3, unit(3)).expect("identical re-dispatch");
    store.append_at("t", 0, 5, unit(5)).expect("next offset");
    let err = store.append_at("t", 0, 2, unit(7)).expect_err("different unit");
    assert!(matches!(err, CqError::Conflict { offset: 2, .. }), "{err}");
    let err = store.append_at("t", 0, 9, unit(9)).expect_err("gap");
    assert!(matches!(err, CqError::Gap { offset: 9, next: 6, .. }), "{err}");
    fill(&store, "t", 0, 6..9);

    // Truncating exactly at a segment boundary keeps that segment, empty, across a restart.
    store.truncate_to("t", 0, 8).expect("truncate at boundary");
    store.truncate_to("t", 0, 8).expect("idempotent");
    assert!(store.truncate_to("t", 0, 9).is_err(), "cannot grow");
    drop(store);
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!(store.max_offset("t", 0), 8);
    assert_eq!(store.truncate_to("t", 9, 0).ok(), Some(()), "unknown queue at 0");
    assert!(store.truncate_to("t", 9, 1).is_err());

    store.truncate_to("t", 0, 0).expect("truncate to nothing");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (0, 0));
    fill(&store, "t", 0, 0..2);
}

#[test]
fn offset_for_timestamp_is_a_lower_bound() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 3).expect("open");
    // Store times with ties: 100, 100, 200, 200, 200, 300, 400.
    for (n, ts) in [100, 100, 200, 200, 200, 300, 400].into_iter().enumerate() {
        let u = CqUnit { store_timestamp_ms: ts, ..unit(n as u64) };
        store.append("t", 0, u).expect("append");
    }
    let at = |ts| store.offset_for_timestamp("t", 0, ts);
    assert_eq!(at(0), 0);
    assert_eq!(at(100), 0);
    assert_eq!(at(101), 2);
    assert_eq!(at(200), 2);
    assert_eq!(at(300), 5);
    assert_eq!(at(301), 6);
    assert_eq!(at(401), 7, "none: the max offset");
    assert_eq!(store.offset_for_timestamp("unknown", 0, 5), 0);

    store.trim_below("t", 0, 3).expect("trim");
    assert_eq!(at(0), 3, "never below the min offset");
}

#[test]
fn trim_below_deletes_whole_segments_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    fill(&store, "t", 0, 0..10);

    assert_eq!(store.trim_below("t", 0, 3).expect("trim"), 0, "segment 0 still holds 3");
    assert_eq!(store.trim_below("t", 0, 9).expect("trim"), 8);
    assert_eq!(store.min_offset("t", 0), 8);
    assert!(!segment(tmp.path(), "t", 4).exists());
    assert_eq!(units_from(&store, "t", 0, 100), vec![8, 9], "reads clamp to min");
    let err = store.append_at("t", 0, 2, unit(2)).expect_err("trimmed");
    assert!(matches!(err, CqError::Trimmed { min: 8, .. }), "{err}");
    assert!(store.truncate_to("t", 0, 7).is_err(), "below min");

    drop(store);
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (8, 10));
}

#[test]
fn trimming_every_unit_keeps_the_offsets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    fill(&store, "t", 0, 0..8);
    // Past the end is clamped: units never disappear beyond the max offset.
    assert_eq!(store.trim_below("t", 0, 100).expect("trim"), 8);
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (8, 8));
    assert!(store.read("t", 0, 0, 10).expect("read").is_empty());
    drop(store);

    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (8, 8));
    fill(&store, "t", 0, 8..9);
    assert_eq!(units_from(&store, "t", 0, 10), vec![8]);
}

#[test]
fn special_topic_names_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let topics = ["%RETRY%group-a", "%DLQ%group_b", "a|b", "..", "plain"];
    {
        let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
        for t in topics {
            fill(&store, t, 0, 0..3);
        }
        store.flush().expect("flush");
    }
    assert!(tmp.path().join("%25RETRY%25group-a").is_dir());
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    let mut expected: Vec<(String, i32)> = topics.iter().map(|t| ((*t).to_owned(), 0)).collect();
    expected.sort();
    assert_eq!(store.queues(), expected);
    for t in topics {
        assert_eq!(units_from(&store, t, 0, 10), vec![0, 1, 2], "{t}");
    }
    let err = store.append("", 0, unit(0)).expect_err("empty topic");
    assert!(matches!(err, CqError::InvalidTopic { .. }), "{err}");
}

#[test]
fn delete_topic_removes_its_queues() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    fill(&store, "%RETRY%g", 0, 0..5);
    fill(&store, "keep", 0, 0..1);
    store.delete_topic("%RETRY%g").expect("delete");
    store.delete_topic("never-existed").expect("delete unknown");
    assert_eq!(store.max_offset("%RETRY%g", 0), 0);
    assert_eq!(store.queues(), vec![("keep".to_owned(), 0)]);
    assert!(!tmp.path().join("%25RETRY%25g").exists());
    store.flush().expect("flush after delete");
    // A recreated topic starts again from offset 0.
    fill(&store, "%RETRY%g", 0, 0..2);
}

#[test]
fn a_reset_queue_starts_at_any_offset_and_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("open");
    fill(&store, "t", 0, 0..6);
    // A snapshot install: the units below 1_001 belong to entries this replica never applies.
    store.reset_queue("t", 0, 1_001).expect("reset");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (1_001, 1_001));
    assert!(store.read("t", 0, 0, 10).expect("read").is_empty());
    fill(&store, "t", 0, 1_001..1_010);
    store.flush().expect("flush");
    drop(store);

    // Segments start at 1_001, 1_005, 1_009: unaligned, but each holds 4 units from the first.
    let store = ConsumeQueueStore::open(tmp.path(), 4).expect("reopen");
    assert_eq!((store.min_offset("t", 0), store.max_offset("t", 0)), (1_001, 1_010));
    assert_eq!(units_from(&store, "t", 1_003, 3), vec![1_003, 1_004, 1_005]);
    assert_eq!(store.unit_at("t", 0, 1_004).expect("unit_at"), Some(unit(1_004)));
    assert_eq!(store.unit_at("t", 0, 3).expect("unit_at"), None, "below the min: not the first unit");
    assert_eq!(store.unit_at("t", 0, 1_010).expect("unit_at"), None, "past the end");
    assert_eq!(store.trim_below("t", 0, 1_006).expect("trim"), 1_005, "whole segments only");
    fill(&store, "t", 0, 1_010..1_011);
    assert_eq!(units_from(&store, "t", 1_005, 10), (1_005..1_011).collect::<Vec<_>>());
}
