//! Coalescing of concurrent requests into shared calls: the loop behind the broker's batcher
//! (requests share a Raft entry) and the SDK's send lanes (sends share a SendMessage call).
//! It lives here because both crates depend on this one.
//!
//! At most `max_inflight` batches are under way at once. Requests that arrive while all are
//! busy wait in the channel and leave together in the next batch, up to `max_items` and
//! `max_bytes`. So an idle caller waits for nothing, and under load the cost of a call is
//! shared by all the requests that queued behind the busy ones.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

/// Caps of one batch; a request larger than the caps still travels, alone.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_inflight: usize,
    pub max_items: usize,
    pub max_bytes: usize,
}

/// Takes requests from `rx` until every sender is gone, and hands each batch to `dispatch`,
/// run on a task of its own. `size` gives a request's (items, bytes).
pub async fn run<T, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<T>,
    caps: Caps,
    size: impl Fn(&T) -> (usize, usize),
    dispatch: F,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(caps.max_inflight.max(1)));
    let mut carry: Option<T> = None;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let (mut items, mut bytes) = size(&first);
        let mut batch = vec![first];
        while items < caps.max_items && bytes < caps.max_bytes {
            let Ok(next) = rx.try_recv() else { break };
            let (i, b) = size(&next);
            if items + i > caps.max_items || bytes + b > caps.max_bytes {
                carry = Some(next);
                break;
            }
            items += i;
            bytes += b;
            batch.push(next);
        }
        let call = dispatch(batch);
        tokio::spawn(async move {
            let _permit = permit;
            call.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    /// One batch under way: the first request goes alone at once, the ones sent meanwhile
    /// leave together (within the caps), in order.
    #[tokio::test]
    async fn requests_queued_behind_a_busy_batch_leave_together() {
        let (tx, rx) = mpsc::unbounded_channel::<u32>();
        let seen: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let release = Arc::new(Mutex::new(Some(release_rx)));
        let caps = Caps { max_inflight: 1, max_items: 3, max_bytes: usize::MAX };
        let log = seen.clone();
        let dispatcher = tokio::spawn(run(
            rx,
            caps,
            |_| (1, 0),
            move |batch| {
                log.lock().unwrap().push(batch);
                // The first batch holds its slot until released.
                let gate = release.lock().unwrap().take();
                async move {
                    if let Some(g) = gate {
                        let _ = g.await;
                    }
                }
            },
        ));
        tx.send(1).unwrap();
        while seen.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        for i in 2..=6 {
            tx.send(i).unwrap();
        }
        release_tx.send(()).unwrap();
        drop(tx);
        dispatcher.await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![vec![1], vec![2, 3, 4], vec![5, 6]]);
    }
}
