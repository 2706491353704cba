//! Unit tests that need the internals: forced 64-bit hash collisions, records, entry counts.

use super::record::{self, Record};
use super::*;

fn entry(topic: &str, id: &str, keys: &[&str], position: u64, ts: i64) -> IndexEntry {
    IndexEntry {
        topic: topic.to_owned(),
        message_id: id.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        position,
        size: 100,
        store_timestamp_ms: ts,
        queue_id: 2,
        queue_offset: position as i64,
    }
}

fn positions(hits: &[IndexHit]) -> Vec<u64> {
    hits.iter().map(|h| h.position).collect()
}

#[test]
fn every_key_hashing_alike_still_finds_exactly_the_right_messages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // One hash for everything: every id and key of every message shares one chain per file,
    // and only the records tell them apart. Small files make the chain cross rollovers.
    let config = IndexConfig { entries_per_file: 8, slots_per_file: 4 };
    let index = MessageIndex::open_hashed(tmp.path(), config, |_, _, _| 0xdead_beef).expect("open");
    let batch = vec![
        entry("t", "k1", &["k2"], 0, 10),
        entry("t", "m2", &["k1"], 100, 20),
        entry("u", "m3", &["k1", "k2"], 200, 30),
        entry("t", "k1", &["k", "k1k"], 300, 40),
        entry("t", "m5", &["k1"], 400, 50),
    ];
    index.insert_batch(&batch, 1).expect("insert");
    assert!(tmp.path().join(file::file_name(1)).exists(), "the batch rolled over");

    assert_eq!(positions(&index.by_message_id(None, "k1").expect("ok")), vec![0, 300]);
    assert_eq!(positions(&index.by_message_id(None, "k2").expect("ok")), Vec::<u64>::new());
    assert_eq!(positions(&index.by_message_id(Some("u"), "m3").expect("ok")), vec![200]);
    assert_eq!(positions(&index.by_key("t", "k1", 10, 0, 100).expect("ok")), vec![400, 100]);
    assert_eq!(positions(&index.by_key("t", "k1", 1, 0, 100).expect("ok")), vec![400]);
    assert_eq!(positions(&index.by_key("u", "k1", 10, 0, 100).expect("ok")), vec![200]);
    assert_eq!(positions(&index.by_key("t", "k2", 10, 0, 100).expect("ok")), vec![0]);
    assert!(index.by_key("t", "m2", 10, 0, 100).expect("ok").is_empty(), "an id is not a key");
}

#[test]
fn repeated_and_empty_keys_are_indexed_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&[entry("t", "id", &["a", "a", "", "b", "a"], 0, 1)], 1).expect("insert");
    assert_eq!(index.shared.writer().active.stats.entries, 3, "id, a, b");
    assert_eq!(positions(&index.by_key("t", "a", 10, 0, 9).expect("ok")), vec![0]);

    // Many keys take the hashed path of the same de-duplication.
    let keys: Vec<String> = (0..40).map(|i| format!("k{}", i % 20)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    index.insert_batch(&[entry("t", "", &keys, 100, 1)], 2).expect("insert");
    assert_eq!(index.shared.writer().active.stats.entries, 3 + 20);
    assert_eq!(positions(&index.by_key("t", "k7", 10, 0, 9).expect("ok")), vec![100]);
}

#[test]
fn a_message_without_id_or_keys_takes_no_space_but_counts_as_seen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open(tmp.path()).expect("open");
    index.insert_batch(&[entry("t", "", &["", ""], 500, 1)], 1).expect("insert");
    assert_eq!(index.shared.writer().active.stats.entries, 0);
    assert_eq!(index.shared.writer().max_position, Some(500));
    index.insert_batch(&[entry("t", "late", &[], 400, 1)], 2).expect("insert");
    assert!(index.by_message_id(None, "late").expect("ok").is_empty(), "below the highest position seen");
}

#[test]
fn records_round_trip_and_reject_damage() {
    let e = entry("%RETRY%g", "ABCD", &["k1", "", "k 2"], 77, -3);
    let keys = [0u32, 2];
    let mut b = Vec::new();
    record::encode_into(&e, &keys, &mut b);
    assert_eq!(b.len(), record::encoded_len(&e, &keys));
    let r = Record::parse(&b).expect("parses");
    assert_eq!((r.topic, r.message_id, r.queue_id, r.queue_offset, r.size), ("%RETRY%g", "ABCD", 2, 77, 100));
    assert!(r.has_key("k1") && r.has_key("k 2"));
    assert!(!r.has_key("k") && !r.has_key("") && !r.has_key("k1k 2"), "whole keys only");
    assert!(Record::parse(&b[..b.len() - 1]).is_none());
    for i in 4..b.len() {
        let mut bad = b.clone();
        bad[i] ^= 0x20;
        assert!(Record::parse(&bad).is_none(), "a flipped byte {i} is caught");
    }
}

#[test]
fn oversized_fields_are_refused_with_their_limit() {
    let mut e = entry("t", "id", &["a", "b", "c"], 9, 1);
    assert!(record::check(&e, 4).is_ok());
    let err = record::check(&e, 3).expect_err("id + 3 keys need 4 entries");
    assert!(matches!(err, IndexError::TooLong { field: "key count", len: 3, max: 2, .. }), "{err}");
    e.keys = vec!["x".repeat(60_000); 300];
    let err = record::check(&e, 1 << 20).expect_err("18 MB of keys");
    assert!(matches!(err, IndexError::TooLong { position: 9, field: "record size (topic, id and keys)", .. }));
}
