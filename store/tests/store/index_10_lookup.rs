//! Message index: lookups by id and key, idempotent re-indexing, retention, the watermark.

use raftmq_store::index::{IndexEntry, IndexError, IndexHit, MessageIndex};

fn entry(topic: &str, id: &str, keys: &[&str], position: u64, ts: i64) -> IndexEntry {
    IndexEntry {
        topic: topic.to_owned(),
        message_id: id.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        position,
        size: 200,
        store_timestamp_ms: ts,
        queue_id: 1,
        queue_offset: i64::try_from(position / 200).expect("small"),
    }
}

fn positions(hits: &[IndexHit]) -> Vec<u64> {
    hits.iter().map(|h| h.position).collect()
}

fn sample() -> Vec<IndexEntry> {
    vec![
        entry("orders", "ID-A", &["order-1", "user-7"], 0, 1_000),
        entry("orders", "ID-B", &["order-2", "user-7"], 200, 2_000),
        entry("orders", "ID-C", &["order-3", "user-7", ""], 400, 3_000),
        // A retry copy keeps the message id.
        entry("%RETRY%g", "ID-A", &["order-1"], 600, 4_000),
        entry("other", "ID-D", &["user-7"], 800, 5_000),
    ]
}

#[test]
fn finds_messages_by_id_in_one_or_all_topics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&sample(), 10).expect("insert");

    let all = index.by_message_id(None, "ID-A").expect("lookup");
    assert_eq!(positions(&all), vec![0, 600]);
    assert_eq!(all[0].topic, "orders");
    assert_eq!(all[1].topic, "%RETRY%g");
    assert_eq!((all[0].queue_id, all[0].size, all[0].store_timestamp_ms), (1, 200, 1_000));

    let retry = index.by_message_id(Some("%RETRY%g"), "ID-A").expect("lookup");
    assert_eq!(positions(&retry), vec![600]);
    assert_eq!(retry[0].queue_offset, 3);
    assert!(index.by_message_id(None, "ID-").expect("lookup").is_empty(), "no prefix match");
    assert!(index.by_message_id(None, "nope").expect("lookup").is_empty());
}

#[test]
fn finds_messages_by_key_within_a_time_range_newest_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&sample(), 10).expect("insert");

    let user7 = index.by_key("orders", "user-7", 10, 0, i64::MAX).expect("lookup");
    assert_eq!(positions(&user7), vec![400, 200, 0], "newest first, this topic only");
    assert_eq!(user7[0].message_id, "ID-C");
    let limited = index.by_key("orders", "user-7", 2, i64::MIN, i64::MAX).expect("lookup");
    assert_eq!(positions(&limited), vec![400, 200]);
    let ranged = index.by_key("orders", "user-7", 10, 1_000, 2_000).expect("lookup");
    assert_eq!(positions(&ranged), vec![200, 0], "both bounds inclusive");
    assert!(index.by_key("orders", "user-7", 10, 3_001, 9_000).expect("ok").is_empty());
    assert!(index.by_key("orders", "user-7", 0, 0, i64::MAX).expect("ok").is_empty());
    assert!(index.by_key("orders", "user", 10, 0, i64::MAX).expect("ok").is_empty());
    assert!(index.by_key("orders", "", 10, 0, i64::MAX).expect("ok").is_empty());
    assert_eq!(positions(&index.by_key("other", "user-7", 10, 0, i64::MAX).expect("ok")), vec![800]);
}

#[test]
fn reindexing_after_recovery_adds_no_duplicates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&sample(), 10).expect("insert");
    index.insert_batch(&sample()[1..3], 7).expect("re-insert");
    index.insert_batch(&sample(), 10).expect("re-insert");

    assert_eq!(index.by_message_id(None, "ID-A").expect("lookup").len(), 2);
    let user7 = index.by_key("orders", "user-7", 10, 0, i64::MAX).expect("lookup");
    assert_eq!(positions(&user7), vec![400, 200, 0]);
    assert_eq!(index.indexed_upto(), Some(10), "the watermark never moves back");
}

#[test]
fn remove_below_drops_purged_positions_and_their_pointers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&sample(), 10).expect("insert");

    assert_eq!(index.remove_below(400).expect("remove"), 2);
    assert_eq!(index.remove_below(400).expect("remove again"), 0);
    assert_eq!(positions(&index.by_message_id(None, "ID-A").expect("ok")), vec![600]);
    assert!(index.by_message_id(None, "ID-B").expect("ok").is_empty());
    let user7 = index.by_key("orders", "user-7", 10, 0, i64::MAX).expect("ok");
    assert_eq!(positions(&user7), vec![400]);
    assert_eq!(index.indexed_upto(), Some(10));

    // Many entries, more than one delete chunk.
    let many: Vec<IndexEntry> =
        (0..10_000u64).map(|n| entry("bulk", &format!("M{n}"), &["k"], 10_000 + n * 200, 10_000)).collect();
    index.insert_batch(&many, 11).expect("insert");
    assert_eq!(index.remove_below(u64::MAX).expect("remove all"), 10_000 + 3);
    assert!(index.by_key("bulk", "k", 5, 0, i64::MAX).expect("ok").is_empty());
}

#[test]
fn remove_below_splits_a_batch_that_straddles_the_purge_point() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    let run: Vec<IndexEntry> = (0..10u64).map(|n| entry("t", &format!("M{n}"), &["k"], n * 200, 1_000)).collect();
    index.insert_batch(&run, 1).expect("insert");

    assert_eq!(index.remove_below(1_000).expect("remove"), 5);
    assert_eq!(index.remove_below(1_000).expect("again"), 0);
    let left = index.by_key("t", "k", 100, 0, i64::MAX).expect("ok");
    assert_eq!(positions(&left), vec![1_800, 1_600, 1_400, 1_200, 1_000]);
    assert_eq!(index.remove_below(1_401).expect("remove"), 3);
    assert!(index.by_message_id(None, "M7").expect("ok").is_empty());
    assert_eq!(index.by_message_id(None, "M8").expect("ok").len(), 1);
}

#[test]
fn reindexing_with_other_batch_boundaries_still_purges_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    let all: Vec<IndexEntry> =
        (0..300u64).map(|n| entry("t", &format!("M{n}"), &["k", &format!("k{n}")], n * 200, 1_000)).collect();
    index.insert_batch(&all, 1).expect("insert");
    // Recovery re-feeds part of the log in smaller batches.
    for (i, batch) in all[50..250].chunks(7).enumerate() {
        index.insert_batch(batch, 1 + i as u64).expect("re-insert");
    }
    assert_eq!(index.by_key("t", "k", 1_000, 0, i64::MAX).expect("ok").len(), 300);

    assert_eq!(index.remove_below(u64::MAX).expect("remove"), 300);
    assert!(index.by_key("t", "k", 1_000, 0, i64::MAX).expect("ok").is_empty());
    for n in [0, 60, 299] {
        assert!(index.by_message_id(None, &format!("M{n}")).expect("ok").is_empty());
        assert!(index.by_key("t", &format!("k{n}"), 5, 0, i64::MAX).expect("ok").is_empty());
    }
}

#[test]
fn watermark_persists_across_reopen_after_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let index = MessageIndex::open(tmp.path()).expect("open");
        assert_eq!(index.indexed_upto(), None);
        index.insert_batch(&sample()[..2], 41).expect("insert");
        index.insert_batch(&[], 42).expect("an empty batch still raises the watermark");
        index.flush().expect("flush");
    }
    let index = MessageIndex::open(tmp.path()).expect("reopen");
    assert_eq!(index.indexed_upto(), Some(42));
    assert_eq!(index.by_message_id(None, "ID-B").expect("ok").len(), 1);

    index.clear().expect("clear");
    assert_eq!(index.indexed_upto(), None);
    assert!(index.by_message_id(None, "ID-B").expect("ok").is_empty());
    index.flush().expect("flush");
    drop(index);
    let index = MessageIndex::open(tmp.path()).expect("reopen");
    assert_eq!(index.indexed_upto(), None, "a cleared index stays cleared");
}

#[test]
fn an_oversized_entry_fails_the_batch_before_any_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    let long = "k".repeat(70_000);
    let batch = vec![entry("t", "ok", &["fine"], 0, 1), entry("t", "bad", &[long.as_str()], 200, 2)];
    let err = index.insert_batch(&batch, 5).expect_err("too long");
    assert!(matches!(err, IndexError::TooLong { position: 200, .. }), "{err}");
    assert!(index.by_message_id(None, "ok").expect("ok").is_empty());
    assert_eq!(index.indexed_upto(), None);
}

#[test]
fn clones_share_one_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    let feeder = index.clone();
    std::thread::spawn(move || feeder.insert_batch(&sample(), 3).expect("insert")).join().expect("feeder");
    assert_eq!(index.indexed_upto(), Some(3));
    assert_eq!(index.by_message_id(Some("other"), "ID-D").expect("ok").len(), 1);
}
