//! Message index files: rollover, chain walks through shared slots, ordering, retention of
//! whole files, concurrent readers, and a seeded random workload checked against a model.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raftmq_store::index::{IndexConfig, IndexEntry, IndexHit, MessageIndex};

fn entry(topic: &str, id: &str, keys: &[&str], position: u64, ts: i64) -> IndexEntry {
    IndexEntry {
        topic: topic.to_owned(),
        message_id: id.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        position,
        size: 64,
        store_timestamp_ms: ts,
        queue_id: 0,
        queue_offset: (position / 10) as i64,
    }
}

fn positions(hits: &[IndexHit]) -> Vec<u64> {
    hits.iter().map(|h| h.position).collect()
}

fn idx_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".idx"))
        .collect();
    names.sort();
    names
}

#[test]
fn files_roll_over_at_the_configured_entry_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = IndexConfig { entries_per_file: 16, slots_per_file: 4 };
    let index = MessageIndex::open_with(tmp.path(), config.clone()).expect("open");
    // Two entries a message, so eight messages a file.
    let all: Vec<IndexEntry> =
        (0..100u64).map(|i| entry("t", &format!("M{i}"), &["shared"], i * 10, i as i64)).collect();
    index.insert_batch(&all, 1).expect("insert");
    let names = idx_files(tmp.path());
    assert_eq!(names.len(), 13);
    assert_eq!((names[0].as_str(), names[12].as_str()), ("00000000000000000000.idx", "00000000000000000012.idx"));

    let check = |index: &MessageIndex| {
        for i in [0u64, 7, 8, 50, 99] {
            assert_eq!(positions(&index.by_message_id(None, &format!("M{i}")).expect("ok")), vec![i * 10]);
        }
        let newest = index.by_key("t", "shared", 10, 0, i64::MAX).expect("ok");
        assert_eq!(positions(&newest), (90..100).rev().map(|i| i * 10).collect::<Vec<_>>());
        let window = index.by_key("t", "shared", 1_000, 5, 20).expect("ok");
        assert_eq!(positions(&window), (5..=20).rev().map(|i| i * 10).collect::<Vec<_>>(), "across three files");
    };
    check(&index);
    index.flush().expect("flush");
    drop(index);
    check(&MessageIndex::open_with(tmp.path(), config).expect("reopen"));
}

#[test]
fn by_key_orders_by_timestamp_then_position_even_when_clocks_go_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = IndexConfig { entries_per_file: 4, slots_per_file: 2 };
    let index = MessageIndex::open_with(tmp.path(), config).expect("open");
    // A new leader with a slower clock: later positions, earlier timestamps.
    let ts = [50, 60, 70, 20, 30, 70, 10, 40];
    let all: Vec<IndexEntry> = ts.iter().enumerate().map(|(i, &t)| entry("t", "", &["k"], i as u64 * 10, t)).collect();
    index.insert_batch(&all, 1).expect("insert");
    let hits = index.by_key("t", "k", 100, 0, 100).expect("ok");
    assert_eq!(positions(&hits), vec![50, 20, 10, 0, 70, 40, 30, 60]);
    assert_eq!(positions(&index.by_key("t", "k", 3, 0, 100).expect("ok")), vec![50, 20, 10]);
    assert_eq!(positions(&index.by_key("t", "k", 2, 15, 45).expect("ok")), vec![70, 40]);
}

#[test]
fn remove_below_deletes_whole_sealed_files_and_hides_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = IndexConfig { entries_per_file: 8, slots_per_file: 4 };
    let index = MessageIndex::open_with(tmp.path(), config.clone()).expect("open");
    // Four messages a file: positions 0..=30 in file 0, 40..=70 in file 1, ...
    let all: Vec<IndexEntry> = (0..20u64).map(|i| entry("t", &format!("M{i}"), &["k"], i * 10, 1)).collect();
    index.insert_batch(&all, 1).expect("insert");
    assert_eq!(idx_files(tmp.path()).len(), 5);

    assert_eq!(index.remove_below(65).expect("remove"), 7);
    assert_eq!(idx_files(tmp.path()).len(), 4, "file 0 is wholly below; file 1 still holds 70");
    assert_eq!(index.remove_below(65).expect("remove"), 0);
    assert_eq!(index.remove_below(80).expect("remove"), 1);
    assert_eq!(idx_files(tmp.path()).len(), 3);
    assert_eq!(index.remove_below(95).expect("remove"), 2);
    assert!(index.by_message_id(None, "M8").expect("ok").is_empty());
    assert_eq!(positions(&index.by_message_id(None, "M10").expect("ok")), vec![100]);
    assert_eq!(index.by_key("t", "k", 100, 0, 9).expect("ok").len(), 10);

    index.flush().expect("flush");
    drop(index);
    let index = MessageIndex::open_with(tmp.path(), config).expect("reopen");
    assert_eq!(index.by_key("t", "k", 100, 0, 9).expect("ok").len(), 10, "the bound is durable");
    assert_eq!(index.remove_below(u64::MAX).expect("remove"), 10);
    assert_eq!(idx_files(tmp.path()).len(), 1, "the active file stays, hidden");
    index.insert_batch(&[entry("t", "late", &["k"], 500, 1)], 2).expect("insert");
    assert_eq!(positions(&index.by_key("t", "k", 100, 0, 9).expect("ok")), vec![500], "later inserts are visible");
}

#[test]
fn readers_see_only_whole_messages_while_the_writer_rolls_over() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = IndexConfig { entries_per_file: 64, slots_per_file: 8 };
    let index = MessageIndex::open_with(tmp.path(), config).expect("open");
    let done = Arc::new(AtomicU64::new(0));
    let (writer_index, writer_done) = (index.clone(), done.clone());
    let writer = std::thread::spawn(move || {
        for b in 0..300u64 {
            let batch: Vec<IndexEntry> = (b * 5..b * 5 + 5)
                .map(|i| entry("t", &format!("M{i}"), &["all", &format!("k{i}")], i * 10, i as i64))
                .collect();
            writer_index.insert_batch(&batch, b + 1).expect("insert");
            writer_done.store(b * 5 + 5, Ordering::Release);
        }
    });
    let mut checks = 0;
    loop {
        let n = done.load(Ordering::Acquire);
        for i in [n.saturating_sub(1), n / 2, n.saturating_sub(37)] {
            if i < n {
                let hits = index.by_message_id(None, &format!("M{i}")).expect("ok");
                assert_eq!(positions(&hits), vec![i * 10], "M{i} of {n}");
                assert_eq!(index.by_key("t", &format!("k{i}"), 5, 0, i64::MAX).expect("ok").len(), 1);
            }
        }
        let newest = index.by_key("t", "all", 20, 0, i64::MAX).expect("ok");
        assert!(newest.len() as u64 >= n.min(20), "everything published before the lookup is seen");
        assert!(newest.windows(2).all(|w| w[0].position == w[1].position + 10), "newest first, no gaps");
        checks += 1;
        if n == 1_500 {
            break;
        }
    }
    writer.join().expect("writer");
    assert!(checks > 1);
}

/// A tiny deterministic RNG, so a failure can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the index should answer: every message inserted, minus the retention bound.
#[derive(Default)]
struct Model {
    all: Vec<IndexEntry>,
    removed_below: u64,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = &IndexEntry> {
        self.all.iter().filter(|e| e.position >= self.removed_below)
    }

    fn by_message_id(&self, topic: Option<&str>, id: &str) -> Vec<IndexHit> {
        let matches = |e: &&IndexEntry| !id.is_empty() && e.message_id == id && topic.is_none_or(|t| t == e.topic);
        self.live().filter(matches).map(hit).collect()
    }

    fn by_key(&self, topic: &str, key: &str, max: usize, begin: i64, end: i64) -> Vec<IndexHit> {
        let matches = |e: &&IndexEntry| {
            !key.is_empty()
                && e.topic == topic
                && e.keys.iter().any(|k| k == key)
                && (begin..=end).contains(&e.store_timestamp_ms)
        };
        let mut hits: Vec<IndexHit> = self.live().filter(matches).map(hit).collect();
        hits.sort_by_key(|h| std::cmp::Reverse((h.store_timestamp_ms, h.position)));
        hits.truncate(max);
        hits
    }

    fn remove_below(&mut self, position: u64) -> u64 {
        let bound = position.min(self.all.last().map_or(0, |e| e.position + 1)).max(self.removed_below);
        let indexed = |e: &&IndexEntry| !e.message_id.is_empty() || e.keys.iter().any(|k| !k.is_empty());
        let n = self.all.iter().filter(|e| (self.removed_below..bound).contains(&e.position)).filter(indexed).count();
        self.removed_below = bound;
        n as u64
    }
}

fn hit(e: &IndexEntry) -> IndexHit {
    IndexHit {
        topic: e.topic.clone(),
        queue_id: e.queue_id,
        queue_offset: e.queue_offset,
        position: e.position,
        size: e.size,
        store_timestamp_ms: e.store_timestamp_ms,
        message_id: e.message_id.clone(),
    }
}

fn random_message(rng: &mut XorShift, position: u64, ts: i64) -> IndexEntry {
    let topic = ["a", "b", "%RETRY%g"][rng.below(3) as usize];
    // A small id pool: retries and duplicates share ids across topics.
    let id = if rng.below(5) == 0 { String::new() } else { format!("ID{}", rng.below(40)) };
    let keys: Vec<String> = (0..rng.below(4))
        .map(|_| if rng.below(6) == 0 { String::new() } else { format!("key{}", rng.below(12)) })
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut e = entry(topic, &id, &keys, position, ts);
    e.queue_id = rng.below(4) as i32;
    e
}

fn check_lookups(index: &MessageIndex, model: &Model, rng: &mut XorShift, step: usize) {
    for _ in 0..12 {
        let id = format!("ID{}", rng.below(40));
        let topic = ["a", "b", "%RETRY%g"][rng.below(3) as usize];
        let scope = if rng.below(2) == 0 { None } else { Some(topic) };
        assert_eq!(index.by_message_id(scope, &id).expect("ok"), model.by_message_id(scope, &id), "step {step}: {id}");
        let key = format!("key{}", rng.below(12));
        let (max, begin) = (1 + rng.below(8) as usize, rng.below(400) as i64);
        let end = begin + rng.below(600) as i64;
        let got = index.by_key(topic, &key, max, begin, end).expect("ok");
        assert_eq!(got, model.by_key(topic, &key, max, begin, end), "step {step}: {topic}/{key} {max} {begin}..={end}");
    }
}

fn random_workload(seed: u64, config: IndexConfig) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = XorShift(seed);
    let mut index = MessageIndex::open_with(tmp.path(), config.clone()).expect("open");
    let mut model = Model::default();
    let (mut position, mut ts, mut applied) = (0u64, 100i64, 0u64);
    for step in 0..150 {
        match rng.below(10) {
            0 => {
                let bound = rng.below(position + 1000);
                assert_eq!(index.remove_below(bound).expect("remove"), model.remove_below(bound), "step {step}");
            }
            1 => {
                index.flush().expect("flush");
                drop(index);
                index = MessageIndex::open_with(tmp.path(), config.clone()).expect("reopen");
            }
            _ => {
                applied += 1;
                // Re-deliver a random recent stretch first, as recovery would.
                let again = rng.below(4) as usize;
                let mut batch: Vec<IndexEntry> = model.all[model.all.len().saturating_sub(again)..].to_vec();
                for _ in 0..1 + rng.below(12) {
                    position += 1 + rng.below(300);
                    ts += rng.below(9) as i64 - 2; // mostly forward, sometimes back
                    let e = random_message(&mut rng, position, ts);
                    model.all.push(e.clone());
                    batch.push(e);
                }
                index.insert_batch(&batch, applied).expect("insert");
            }
        }
        check_lookups(&index, &model, &mut rng, step);
    }
}

#[test]
fn a_random_workload_matches_the_model() {
    for seed in [1, 2, 3] {
        random_workload(seed * 0x2545_f491_4f6c_dd1d, IndexConfig { entries_per_file: 32, slots_per_file: 8 });
    }
}

#[test]
fn one_slot_puts_every_key_in_one_chain_and_lookups_stay_exact() {
    random_workload(0x5eed, IndexConfig { entries_per_file: 200, slots_per_file: 1 });
}
