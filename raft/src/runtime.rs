//! openraft's tokio runtime with a seedable `thread_rng()`.
//!
//! openraft draws election timeouts and tick jitter from `AsyncRuntime::thread_rng()`.
//! `TokioRuntime` answers with rand's OS-seeded thread RNG, so the deterministic simulation
//! (`broker/tests/sim`) could not replay a seed. openraft's own `DeterministicRng` panics
//! outside a task-local seed scope, which production `Raft::new` never enters. This runtime is
//! `TokioRuntime` in everything except `thread_rng()`: after [`seed_thread_rng`] on the calling
//! thread, each RNG is seeded from that thread's seeded master RNG (the simulation steps every
//! host on one thread); otherwise from rand's thread RNG, as before.

use std::cell::RefCell;
use std::future::Future;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand::SeedableRng;
use rand::rngs::SmallRng;

thread_local! {
    static MASTER: RefCell<Option<SmallRng>> = const { RefCell::new(None) };
}

/// Makes every later `thread_rng()` of [`SeedableTokio`] on this thread a function of `seed`
/// (and of how many were drawn before). For simulations only.
pub fn seed_thread_rng(seed: u64) {
    MASTER.with(|m| *m.borrow_mut() = Some(SmallRng::seed_from_u64(seed)));
}

/// [`TokioRuntime`], with a `thread_rng()` that [`seed_thread_rng`] can make reproducible.
#[derive(Debug)]
pub struct SeedableTokio(TokioRuntime);

type Tokio = TokioRuntime;

impl AsyncRuntime for SeedableTokio {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;
    type Mpsc = <Tokio as AsyncRuntime>::Mpsc;
    type Watch = <Tokio as AsyncRuntime>::Watch;
    type Oneshot = <Tokio as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: std::time::Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: std::time::Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        MASTER.with(|m| match m.borrow_mut().as_mut() {
            Some(master) => SmallRng::from_rng(master),
            None => SmallRng::from_rng(&mut rand::rng()),
        })
    }

    fn new(threads: usize) -> Self {
        Self(Tokio::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn draws() -> Vec<u64> {
        (0..4).map(|_| SeedableTokio::thread_rng().random()).collect()
    }

    #[test]
    fn a_seeded_thread_draws_the_same_numbers_again() {
        // Each test runs on its own thread: the seed does not leak into other tests.
        seed_thread_rng(7);
        let first = draws();
        seed_thread_rng(7);
        assert_eq!(draws(), first);
        seed_thread_rng(8);
        assert_ne!(draws(), first);
    }

    #[test]
    fn an_unseeded_thread_draws_from_the_os_seeded_rng() {
        assert_ne!(draws(), draws());
    }
}
