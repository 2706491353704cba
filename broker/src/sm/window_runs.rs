//! The idempotent-send window's sealed runs, kept in a side file so that a
//! regular checkpoint writes each id once instead of every time.
//!
//! The window holds up to 200k ids (about 15 MB encoded). Written whole into
//! every checkpoint (every 5 s on every replica), it was most of a replica's
//! checkpoint I/O, and its fdatasyncs queued up with the CommitLog's: the
//! end-to-end p99 at 1000 msgs/s doubled (docs/benchmarks.md, fifth sitting).
//!
//! A run is sealed once it holds 1024 ids and never changes after, so each one
//! is appended here once, as a record `run id u64 | len u32 | crc32c u32 |
//! SentIdRun protobuf` (little-endian), to `runs-<generation>.bin`. A regular
//! checkpoint then names the file generation and its runs (`WindowRunsRef`)
//! and carries only the open tail (under 1024 ids) itself.
//!
//! Order (I42): the runs a checkpoint names are synced (and a new file's
//! directory entry too) before the checkpoint file is replaced; an older
//! generation is deleted only after a checkpoint naming a newer one is
//! durable. A crash can leave a torn record at the end of a file: no durable
//! checkpoint names it, and reading stops there. After a restart the first
//! checkpoint starts a new generation, so run ids (unique per process only)
//! never mix. A generation is rewritten with only the live runs once the dead
//! ones outweigh them (see [`Compaction`]).
//!
//! Pins and snapshots never use this file: they carry every id themselves, as
//! they are handed to other replicas.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use prost::Message as _;
use raftmq_proto::broker::{Checkpoint, SentIdRun, WindowRunsRef};

use super::checkpoint::CheckpointError;
use super::dedup::{RunId, SentIdsCapture};

const HEADER: usize = 16;

/// When a generation is rewritten with only its live runs: once its dead bytes exceed
/// both `dead_ratio` times the live bytes and `min_dead` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Compaction {
    pub dead_ratio: u64,
    pub min_dead: u64,
}

impl Default for Compaction {
    /// A full window's runs are ~15 MB; with these a replica storing ~27k msgs/s rewrites
    /// them about every 40 s and keeps at most ~80 MB of run files.
    fn default() -> Self {
        Self { dead_ratio: 3, min_dead: 32 << 20 }
    }
}

/// The side file of one replica's state machine.
pub struct WindowRuns {
    dir: PathBuf,
    compaction: Compaction,
    open: Mutex<Option<Generation>>,
    /// Every generation below this one is gone already (0: unknown, as at start-up), so a
    /// checkpoint of the same generation does not list the directory again.
    retired_below: AtomicU64,
}

/// The generation being appended to.
struct Generation {
    number: u64,
    file: fs::File,
    len: u64,
    /// Each run in the file, with its record's size.
    runs: HashMap<RunId, u64>,
}

fn file_name(generation: u64) -> String {
    format!("runs-{generation:020}.bin")
}

fn record_len(ids: &[raftmq_proto::broker::SentId]) -> u64 {
    let body: usize = ids.iter().map(|id| prost::encoding::message::encoded_len(1, id)).sum();
    (HEADER + body) as u64
}

fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("runs-")?.strip_suffix(".bin")?.parse().ok()
}

impl WindowRuns {
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        Self::open_with(dir, Compaction::default())
    }

    pub fn open_with(dir: &Path, compaction: Compaction) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(CheckpointError::io(dir))?;
        Ok(Self { dir: dir.to_path_buf(), compaction, open: Mutex::new(None), retired_below: AtomicU64::new(0) })
    }

    fn generations(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(CheckpointError::io(&self.dir))? {
            let e = e.map_err(CheckpointError::io(&self.dir))?;
            if let Some(g) = e.file_name().to_str().and_then(parse_name) {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Makes the captured window's sealed runs durable in the current generation (or a new
    /// one) and returns what a checkpoint of it names.
    pub fn persist(&self, window: &SentIdsCapture) -> Result<WindowRunsRef, CheckpointError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let rewrite = match open.as_ref() {
            None => true,
            Some(g) => {
                // Bytes of the window's runs already in the file, and of those to append.
                let (mut known, mut new) = (0, 0);
                for r in window.sealed() {
                    match g.runs.get(&r.id) {
                        Some(len) => known += len,
                        None => new += record_len(&r.ids),
                    }
                }
                let dead = g.len.saturating_sub(known);
                dead > (known + new).saturating_mul(self.compaction.dead_ratio) && dead > self.compaction.min_dead
            }
        };
        if rewrite {
            *open = Some(self.start_generation()?);
        }
        let g = open.as_mut().expect("a generation was just opened");
        let path = self.dir.join(file_name(g.number));
        let (mut buf, mut written) = (Vec::new(), Vec::new());
        for run in window.sealed() {
            if g.runs.contains_key(&run.id) {
                continue;
            }
            // SentIdRun's bytes, encoded by reference (field 1, repeated).
            let mut body = Vec::new();
            run.ids.iter().for_each(|id| prost::encoding::message::encode(1, id, &mut body));
            buf.extend_from_slice(&run.id.to_le_bytes());
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
            buf.extend_from_slice(&body);
            written.push((run.id, (HEADER + body.len()) as u64));
        }
        if !buf.is_empty() {
            if let Err(e) = raftmq_store::io::write_all_synced(&g.file, &buf, g.len) {
                // What part of the write landed is unknown: the next checkpoint starts afresh.
                *open = None;
                return Err(CheckpointError::io(&path)(e));
            }
            g.len += buf.len() as u64;
            g.runs.extend(written);
        }
        Ok(WindowRunsRef {
            generation: g.number,
            runs: window.sealed().iter().map(|r| r.id).collect(),
            front_skip: window.front_skip() as u32,
        })
    }

    /// A new, empty generation after every existing one, its directory entry durable.
    fn start_generation(&self) -> Result<Generation, CheckpointError> {
        let number = self.generations()?.last().map_or(1, |g| g + 1);
        let path = self.dir.join(file_name(number));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(CheckpointError::io(&path))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(CheckpointError::io(&self.dir))?;
        Ok(Generation { number, file, len: 0, runs: HashMap::new() })
    }

    /// Deletes every generation before `generation`, once a checkpoint naming it is durable.
    /// A failure only leaves a file behind (the next call tries again).
    pub fn retire_before(&self, generation: u64) {
        if self.retired_below.load(Ordering::Relaxed) >= generation {
            return;
        }
        let Ok(all) = self.generations() else { return };
        let mut all_gone = true;
        for g in all.into_iter().filter(|g| *g < generation) {
            let path = self.dir.join(file_name(g));
            if let Err(e) = fs::remove_file(&path) {
                all_gone = false;
                tracing::warn!(path = %path.display(), "could not delete an old window runs file: {e}");
            }
        }
        if all_gone {
            self.retired_below.store(generation, Ordering::Relaxed);
        }
    }

    /// `c` with every id of its window in `sent_ids` (its runs read from the side file), as a
    /// pin carries them; `c` unchanged when it names no runs.
    pub fn resolve(&self, mut c: Checkpoint) -> Result<Checkpoint, CheckpointError> {
        let Some(r) = c.window_runs.take() else { return Ok(c) };
        let path = self.dir.join(file_name(r.generation));
        let corrupt = |why: String| CheckpointError::Corrupt { path: path.clone(), why };
        let bytes = fs::read(&path).map_err(CheckpointError::io(&path))?;
        let mut runs: HashMap<RunId, &[u8]> = HashMap::new();
        let mut at = 0;
        // A torn record can end the file after a crash: no durable checkpoint names it.
        while let Some(h) = bytes.get(at..at + HEADER) {
            let id = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
            let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else { break };
            if crc32c::crc32c(body) != crc {
                break;
            }
            runs.insert(id, body);
            at += HEADER + len;
        }
        let mut ids = Vec::new();
        for (i, id) in r.runs.iter().enumerate() {
            let body = runs.get(id).ok_or_else(|| corrupt(format!("window run {id} is missing")))?;
            let run = SentIdRun::decode(*body).map_err(|e| corrupt(format!("window run {id}: {e}")))?;
            let skip = if i == 0 { r.front_skip as usize } else { 0 };
            ids.extend(run.ids.into_iter().skip(skip));
        }
        ids.append(&mut c.sent_ids);
        c.sent_ids = ids;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::dedup::SentIds;
    use raftmq_proto::broker::SentId;

    /// Writes `bytes` to `dir/name` as they are (a torn or cut file).
    fn plant(dir: &Path, name: &str, bytes: &[u8]) {
        fs::write(dir.join(name), bytes).unwrap();
    }

    fn id(i: usize) -> SentId {
        SentId {
            topic: "t".into(),
            message_id: format!("m{i}"),
            queue_id: 0,
            queue_offset: i as i64,
            position: i as u64,
            store_timestamp_ms: 0,
            window_clock_ms: 1_000,
        }
    }

    fn window(n: usize) -> SentIds {
        let mut s = SentIds::default();
        for i in 0..n {
            s.insert(id(i));
        }
        s
    }

    /// What a checkpoint of `cap` stores with the runs in the side file, read back.
    fn round_trip(runs: &WindowRuns, cap: &SentIdsCapture) -> Vec<SentId> {
        let r = runs.persist(cap).unwrap();
        let c = Checkpoint { sent_ids: cap.tail().to_vec(), window_runs: Some(r), ..Default::default() };
        let c = Checkpoint::decode(&c.encode_to_vec()[..]).unwrap();
        runs.resolve(c).unwrap().sent_ids
    }

    #[test]
    fn a_checkpoint_naming_runs_resolves_to_the_whole_window() {
        let dir = tempfile::tempdir().unwrap();
        let runs = WindowRuns::open(dir.path()).unwrap();
        let mut s = window(5_000);
        assert_eq!(round_trip(&runs, &s.capture()), s.capture().to_pb());
        // More ids, and a forgotten front: only the new runs are appended.
        let before = fs::metadata(dir.path().join(file_name(1))).unwrap().len();
        for i in 5_000..7_500 {
            s.insert(id(i));
        }
        let cap = s.capture();
        assert_eq!(round_trip(&runs, &cap), cap.to_pb());
        let after = fs::metadata(dir.path().join(file_name(1))).unwrap().len();
        assert!(after > before && after < 2 * before, "appended {} bytes to {before}", after - before);
    }

    #[test]
    fn a_generation_is_rewritten_once_dead_runs_outweigh_live_ones_and_old_ones_retire() {
        let dir = tempfile::tempdir().unwrap();
        let runs = WindowRuns::open_with(dir.path(), Compaction { dead_ratio: 1, min_dead: 0 }).unwrap();
        let mut s = window(4_096);
        assert_eq!(runs.persist(&s.capture()).unwrap().generation, 1);
        // Forget everything old: the window is now a fresh 4 runs, the file 8 (4 dead).
        s = SentIds::default();
        for i in 10_000..14_200 {
            s.insert(id(i));
        }
        assert_eq!(runs.persist(&s.capture()).unwrap().generation, 1, "dead == live: not yet");
        let s2 = window(1_100);
        let r = runs.persist(&s2.capture()).unwrap();
        assert_eq!(r.generation, 2, "8 dead runs against 1 live");
        runs.retire_before(r.generation);
        assert!(!dir.path().join(file_name(1)).exists());
        assert_eq!(round_trip(&runs, &s2.capture()), s2.capture().to_pb());
    }

    #[test]
    fn a_torn_tail_is_ignored_and_a_missing_run_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let runs = WindowRuns::open(dir.path()).unwrap();
        let s = window(2_048 + 10);
        let cap = s.capture();
        let r = runs.persist(&cap).unwrap();
        let path = dir.path().join(file_name(r.generation));
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[7; HEADER + 3]); // a record torn by a crash
        plant(dir.path(), &file_name(r.generation), &bytes);
        let c = Checkpoint { sent_ids: cap.tail().to_vec(), window_runs: Some(r.clone()), ..Default::default() };
        assert_eq!(runs.resolve(c.clone()).unwrap().sent_ids, cap.to_pb());
        // Cut into the second run: the checkpoint names a run the file no longer holds.
        plant(dir.path(), &file_name(r.generation), &bytes[..bytes.len() / 2 + HEADER]);
        assert!(matches!(runs.resolve(c), Err(CheckpointError::Corrupt { .. })));
        // A restarted replica starts a new generation after the existing ones.
        let reopened = WindowRuns::open(dir.path()).unwrap();
        assert_eq!(reopened.persist(&cap).unwrap().generation, r.generation + 1);
    }
}
