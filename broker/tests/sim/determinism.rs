//! What makes a run a function of its seed, beyond turmoil's own seeded network and clock.
//!
//! - tokio's runtime RNG (`select!` branch order, wake order): turmoil seeds it from
//!   `Builder::rng_seed` when built with `--cfg tokio_unstable` (`.cargo/config.toml`).
//! - openraft's election timeouts and tick jitter: [`raftmq_raft::runtime::seed_thread_rng`]
//!   (every host runs on this thread).
//! - The broker's wall clock (entry stamps, pops' `now_ms`): turmoil's clock from [`EPOCH`].
//! - Workload and proposer run ids: `World::boot_seed`.
//! - tokio's task numbers: see [`align_task_ids`].
//!
//! [`prepare`] sets all of these and holds a lock for the run, so that runs on other test
//! threads do not take task numbers in between.
//!
//! When two runs of a seed differ, `RAFTMQ_SIM_LOG=<dir>` writes each run's tracing events
//! ([`logged`]) for `diff`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The simulated wall clock starts at 2024-01-01T00:00:00Z, whatever the real date.
pub const EPOCH: Duration = Duration::from_secs(1_704_067_200);

/// The shards of a current-thread runtime's task list (tokio's `OwnedTasks::new(1)`).
const TASK_SHARDS: u64 = 4;

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Makes this thread's next run a function of `seed`; the run holds the returned guard.
pub fn prepare(seed: u64) -> MutexGuard<'static, ()> {
    let guard = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    raftmq_raft::runtime::seed_thread_rng(seed);
    // `false` when an earlier run installed it: the same function.
    let _ = raftmq_broker::clock::set_source(simulated_now_ms);
    align_task_ids();
    guard
}

/// The broker's wall clock on a simulated host: turmoil's clock, from `EPOCH`
/// (`Builder::epoch`).
fn simulated_now_ms() -> i64 {
    turmoil::since_epoch().expect("the broker's clock is read on a simulated host").as_millis() as i64
}

/// tokio numbers tasks from one process-wide counter, and a runtime shutting down (a crash)
/// drops its tasks shard by shard, a task's shard being its number modulo [`TASK_SHARDS`]. The
/// drop order is the order in which the crashed host's sockets reset their peers, and so which
/// of turmoil's random latencies each reset gets. Starting every run at a multiple of
/// [`TASK_SHARDS`] makes that order the same in any process and after any earlier run.
fn align_task_ids() {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    loop {
        let id: u64 = rt.spawn(async {}).id().to_string().parse().expect("tokio's task ids are numbers");
        if (id + 1).is_multiple_of(TASK_SHARDS) {
            return;
        }
    }
}

/// With `RAFTMQ_SIM_LOG=<dir>`, runs `f` with its tracing events (`RUST_LOG`, default `debug`)
/// written to `<dir>/seed-<seed>-run-<n>.log` (`n` counts runs in this process), each stamped
/// with simulated time. openraft prints some instants as wall-clock times and tokio instants
/// count from the real time a host started; cut those before comparing two runs:
/// `sed -E 's/[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}//g; s/tv_sec: [0-9]+, tv_nsec: [0-9]+//g'`.
pub fn logged<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let Some(dir) = std::env::var_os("RAFTMQ_SIM_LOG") else { return f() };
    let path = Path::new(&dir).join(format!("seed-{seed}-run-{}.log", RUNS.fetch_add(1, Ordering::Relaxed)));
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "debug".into());
    let events = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(SimulatedTime)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .finish();
    tracing::subscriber::with_default(events, f)
}

struct SimulatedTime;

impl FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3} ms", t.as_secs_f64() * 1e3),
            None => write!(w, "{:>12}", "-"),
        }
    }
}
