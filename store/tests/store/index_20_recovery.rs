//! Message index recovery: what a crash or power loss leaves behind is rolled back to the last
//! flush, never returned as garbage, and re-indexing the rest adds no duplicates.
//!
//! The tests edit files by the layout documented in `store/src/index/format.rs`:
//! `index.meta` (active_seq u64 at 48, active entries u32 at 56, heap_len u32 at 64) and
//! `{seq:020}.idx` (header 64 bytes with slots u32 at 16 and capacity u32 at 20, then
//! 4 * slots of slot table, then 40-byte entries, then the record heap).

use std::fs;
use std::path::Path;

use raftmq_store::index::{IndexConfig, IndexEntry, IndexError, MessageIndex};

const SMALL: IndexConfig = IndexConfig { entries_per_file: 64, slots_per_file: 16 };

/// Message `i`: three entries (id and two keys), in one of three topics.
fn msg(i: u64) -> IndexEntry {
    IndexEntry {
        topic: format!("t{}", i % 3),
        message_id: format!("ID-{i}"),
        keys: vec![format!("k{}", i % 7), format!("u{i}")],
        position: i * 100,
        size: 90,
        store_timestamp_ms: 1_000 + i as i64,
        queue_id: (i % 4) as i32,
        queue_offset: (i / 4) as i64,
    }
}

fn insert(index: &MessageIndex, range: std::ops::Range<u64>, applied: u64) {
    let all: Vec<IndexEntry> = range.map(msg).collect();
    for batch in all.chunks(7) {
        index.insert_batch(batch, applied).expect("insert");
    }
}

/// Every lookup agrees with "exactly messages `0..n` are indexed".
fn assert_holds_exactly(index: &MessageIndex, n: u64, upto: u64) {
    for i in 0..upto {
        let hits = index.by_message_id(None, &format!("ID-{i}")).expect("lookup");
        if i < n {
            assert_eq!(hits.len(), 1, "ID-{i}");
            let (h, m) = (&hits[0], msg(i));
            assert_eq!((h.position, h.topic.as_str(), h.queue_offset), (m.position, m.topic.as_str(), m.queue_offset));
        } else {
            assert!(hits.is_empty(), "ID-{i} was never committed: {hits:?}");
        }
        let own = index.by_key(&format!("t{}", i % 3), &format!("u{i}"), 5, 0, i64::MAX).expect("lookup");
        assert_eq!(own.len(), usize::from(i < n), "u{i}");
    }
    for t in 0..3 {
        for k in 0..7 {
            let hits = index.by_key(&format!("t{t}"), &format!("k{k}"), 1_000, 0, i64::MAX).expect("lookup");
            let want: Vec<u64> = (0..n).rev().filter(|i| i % 3 == t && i % 7 == k).map(|i| i * 100).collect();
            assert_eq!(hits.iter().map(|h| h.position).collect::<Vec<_>>(), want, "t{t}/k{k}");
        }
    }
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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for name in idx_files(from).into_iter().chain(["index.meta".to_owned()]) {
        fs::copy(from.join(&name), to.join(&name)).expect("copy");
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// (active file name, committed entries, committed heap length) from the meta.
fn active_of(dir: &Path) -> (String, u32, u32) {
    let m = fs::read(dir.join("index.meta")).expect("meta");
    let seq = u64::from_le_bytes(m[48..56].try_into().expect("8 bytes"));
    (format!("{seq:020}.idx"), le_u32(&m, 56), le_u32(&m, 64))
}

/// Byte offsets of (the entries, the heap) in an index file.
fn layout_of(file: &[u8]) -> (usize, usize) {
    let (slots, capacity) = (le_u32(file, 16) as usize, le_u32(file, 20) as usize);
    (64 + 4 * slots, 64 + 4 * slots + 40 * capacity)
}

#[test]
fn an_unflushed_tail_is_dropped_on_reopen_and_reindexed_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("open");
    insert(&index, 0..50, 1);
    index.flush().expect("flush");
    insert(&index, 50..80, 2);
    let files_before = idx_files(tmp.path()).len();
    drop(index); // a crash: nothing flushes on drop

    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("reopen");
    assert_eq!(index.indexed_upto(), Some(1));
    assert!(idx_files(tmp.path()).len() < files_before, "files rolled over after the flush are gone");
    assert_holds_exactly(&index, 50, 80);
    // Recovery re-feeds from an older checkpoint, overlapping what survived.
    insert(&index, 30..80, 2);
    assert_holds_exactly(&index, 80, 90);
    assert_eq!(index.indexed_upto(), Some(2));
}

/// A tiny deterministic RNG, so a failing image can be rebuilt from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the disk may hold after a power loss following the flush that left `durable` and the
/// writes that left `later`: the meta of `durable`; every file at least as long as it was
/// durably; each 512-byte sector written since either reached the disk or did not.
/// `p_later` in 0..=8 is how many eighths of the sectors did.
fn power_loss_image(durable: &Path, later: &Path, out: &Path, rng: &mut XorShift, p_later: u64) {
    fs::create_dir_all(out).expect("mkdir");
    fs::copy(durable.join("index.meta"), out.join("index.meta")).expect("meta");
    for name in idx_files(later) {
        let new = fs::read(later.join(&name)).expect("read");
        let old = fs::read(durable.join(&name)).unwrap_or_default();
        let len = old.len() + (rng.next() as usize) % (new.len() - old.len() + 1);
        let mut image = vec![0u8; len];
        for (s, sector) in image.chunks_mut(512).enumerate() {
            let src = if rng.next() % 8 < p_later { &new } else { &old };
            let at = s * 512;
            if at < src.len() {
                let n = sector.len().min(src.len() - at);
                sector[..n].copy_from_slice(&src[at..at + n]);
            }
        }
        if !old.is_empty() || rng.next().is_multiple_of(2) {
            fs::write(out.join(&name), image).expect("write");
        }
    }
}

#[test]
fn any_power_loss_after_a_flush_recovers_exactly_that_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (live, durable, later) = (tmp.path().join("live"), tmp.path().join("durable"), tmp.path().join("later"));
    let index = MessageIndex::open_with(&live, SMALL).expect("open");
    insert(&index, 0..50, 1);
    index.flush().expect("flush");
    copy_dir(&live, &durable);
    // The next flush rolls over twice and rewrites slot tables: had the power failed before
    // its meta was replaced, any mix of its sectors could be on disk.
    insert(&index, 50..120, 2);
    index.flush().expect("flush");
    copy_dir(&live, &later);
    drop(index);

    for seed in 1..=24u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let image = tmp.path().join(format!("image-{seed}"));
        power_loss_image(&durable, &later, &image, &mut rng, seed % 9);
        let index = MessageIndex::open_with(&image, SMALL).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(index.indexed_upto(), Some(1), "seed {seed}");
        assert_holds_exactly(&index, 50, 120);
        insert(&index, 40..120, 2);
        assert_holds_exactly(&index, 120, 125);
        index.flush().expect("flush");
        drop(index);
        let index = MessageIndex::open_with(&image, SMALL).expect("reopen");
        assert_holds_exactly(&index, 120, 125);
    }
}

#[test]
fn garbage_past_the_committed_tail_is_never_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("open");
    insert(&index, 0..10, 1);
    index.flush().expect("flush");
    drop(index);

    // A torn append: entries past the committed ones full of junk, the heap cut short.
    let (name, entries, heap_len) = active_of(tmp.path());
    let path = tmp.path().join(&name);
    let mut file = fs::read(&path).expect("read");
    let (entries_at, heap_at) = layout_of(&file);
    file[entries_at + 40 * entries as usize..heap_at].fill(0xa5);
    file.truncate(heap_at + heap_len as usize);
    file.extend_from_slice(&[0xa5; 3]);
    fs::write(&path, file).expect("write");

    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("reopen");
    assert_holds_exactly(&index, 10, 12);
    insert(&index, 0..20, 2);
    assert_holds_exactly(&index, 20, 22);
}

#[test]
fn corrupt_committed_bytes_are_reported_not_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("open");
    insert(&index, 0..50, 1);
    index.flush().expect("flush");
    drop(index);
    let first = tmp.path().join(&idx_files(tmp.path())[0]);
    let pristine = fs::read(&first).expect("read");
    let (entries_at, heap_at) = layout_of(&pristine);

    // Entry 1 is message 0's id entry; the heap starts with message 0's record.
    for (at, what) in [(entries_at + 8, "an entry"), (heap_at + 40, "a record")] {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        fs::write(&first, &bad).expect("write");
        let index = MessageIndex::open_with(tmp.path(), SMALL).expect("open");
        let err = index.by_message_id(None, "ID-0").expect_err(what);
        assert!(matches!(err, IndexError::Corrupt { .. }), "{what}: {err}");
        drop(index);
    }

    let mut bad = pristine.clone();
    bad[30] ^= 0x10;
    fs::write(&first, &bad).expect("write");
    let err = MessageIndex::open_with(tmp.path(), SMALL).err().expect("a sealed file's header is checked");
    assert!(matches!(err, IndexError::Corrupt { .. }), "{err}");
    fs::write(&first, &pristine).expect("write");

    let meta = tmp.path().join("index.meta");
    let mut m = fs::read(&meta).expect("read");
    m[20] ^= 1;
    fs::write(&meta, &m).expect("write");
    let err = MessageIndex::open_with(tmp.path(), SMALL).err().expect("the meta is checked");
    assert!(matches!(err, IndexError::Corrupt { .. }), "{err}");
}

#[test]
fn files_left_by_an_interrupted_clear_are_deleted_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let saved = tmp.path().join("saved");
    let dir = tmp.path().join("index");
    let index = MessageIndex::open_with(&dir, SMALL).expect("open");
    insert(&index, 0..50, 1);
    index.flush().expect("flush");
    copy_dir(&dir, &saved);
    index.clear().expect("clear");
    drop(index);
    // A crash after the cleared meta was written, before the old files were unlinked.
    for name in idx_files(&saved) {
        fs::copy(saved.join(&name), dir.join(&name)).expect("copy back");
    }

    let index = MessageIndex::open_with(&dir, SMALL).expect("reopen");
    assert_eq!(index.indexed_upto(), None);
    assert_holds_exactly(&index, 0, 50);
    assert_eq!(idx_files(&dir).len(), 1, "only the new active file");
    insert(&index, 0..50, 1);
    assert_holds_exactly(&index, 50, 52);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = MessageIndex::open_with(tmp.path(), SMALL).expect("open");
    let err = MessageIndex::open_with(tmp.path(), SMALL).err().expect("locked");
    assert!(matches!(err, IndexError::InUse { .. }), "{err}");
    drop(index);
    MessageIndex::open_with(tmp.path(), SMALL).expect("free again once dropped");
}
