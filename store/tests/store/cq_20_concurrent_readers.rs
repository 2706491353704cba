//! Consume queue: readers running beside the writer see only whole units.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use raftmq_store::consume_queue::{ConsumeQueueStore, CqUnit};

const UNITS: u64 = 20_000;

/// Every field is derived from the offset, so a torn or misplaced unit cannot pass.
fn unit(n: u64) -> CqUnit {
    CqUnit {
        position: n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        size: u32::try_from(n % 1_000 + 1).expect("small"),
        tag_hash: !n,
        store_timestamp_ms: i64::try_from(n).expect("small") + 1,
    }
}

#[test]
fn readers_never_see_a_torn_or_unwritten_unit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Small segments so the writer rolls over files while readers run.
    let store = Arc::new(ConsumeQueueStore::open(tmp.path(), 512).expect("open"));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut next = 0i64;
                let mut checked = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let batch = store.read("t", 0, next, 97 + r).expect("read");
                    for (offset, u) in &batch {
                        assert_eq!(*offset, next, "offsets are dense");
                        assert_eq!(*u, unit(u64::try_from(*offset).expect("offset >= 0")));
                        next += 1;
                        checked += 1;
                    }
                    assert!(next <= store.max_offset("t", 0), "read past the published end");
                    if finished && batch.is_empty() {
                        return checked;
                    }
                    // A reader that also probes the head exercises the tail segment.
                    let head = store.max_offset("t", 0);
                    if head > 0 {
                        let tail = store.read("t", 0, head - 1, 4).expect("read head");
                        assert!(tail.iter().all(|(o, u)| *u == unit(u64::try_from(*o).expect("offset >= 0"))));
                    }
                }
            })
        })
        .collect();

    for n in 0..UNITS {
        store.append("t", 0, unit(n)).expect("append");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert_eq!(r.join().expect("reader panicked"), UNITS);
    }
}
