//! Flow control for the push consumer: how many messages (and bytes) are
//! cached, that is received and not yet finished (waiting for a listener,
//! running, or being acknowledged). Each receive loop (one per broker group)
//! reserves the room it asks for before its receive and gives back what the
//! receive did not fill, so the message count never exceeds its maximum; the
//! byte count is only known after a receive, so it may overshoot by one batch
//! per loop, after which receiving stops until it falls below the maximum
//! again.

use std::sync::Mutex;

use tokio::sync::Notify;

/// Cache occupancy now and at its highest.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheLevel {
    pub messages: usize,
    pub bytes: usize,
    pub peak_messages: usize,
    pub peak_bytes: usize,
}

pub(crate) struct FlowControl {
    max_messages: usize,
    max_bytes: usize,
    // A std mutex: held for a few arithmetic operations, never across an await.
    level: Mutex<Level>,
    freed: Notify,
}

#[derive(Default)]
struct Level {
    cache: CacheLevel,
    /// Messages receives under way may still bring (their reservations).
    reserved: usize,
}

/// Room taken for one receive; what the receive did not fill goes back when it drops.
pub(crate) struct Reservation<'a> {
    flow: &'a FlowControl,
    pub(crate) messages: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        {
            let mut l = self.flow.lock();
            l.reserved = l.reserved.saturating_sub(self.messages);
        }
        self.flow.freed.notify_waiters();
    }
}

impl FlowControl {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self { max_messages, max_bytes, level: Mutex::default(), freed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Level> {
        self.level.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn room_of(&self, l: &Level) -> usize {
        if l.cache.bytes >= self.max_bytes {
            0
        } else {
            self.max_messages.saturating_sub(l.cache.messages + l.reserved)
        }
    }

    /// How many messages may be received now: none while either threshold is reached.
    #[cfg(test)]
    fn room(&self) -> usize {
        self.room_of(&self.lock())
    }

    /// Waits until there is room and takes up to `want` of it for one receive.
    pub(crate) async fn reserve(&self, want: usize) -> Reservation<'_> {
        loop {
            // Registered before the check, so a release between the check and
            // the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut l = self.lock();
                let take = self.room_of(&l).min(want);
                if take > 0 {
                    l.reserved += take;
                    return Reservation { flow: self, messages: take };
                }
            }
            freed.await;
        }
    }

    /// One received message enters the cache (within a reservation, which it uses up).
    pub(crate) fn add(&self, r: &mut Reservation<'_>, bytes: usize) {
        let mut l = self.lock();
        if r.messages > 0 {
            r.messages -= 1;
            l.reserved = l.reserved.saturating_sub(1);
        }
        l.cache.messages += 1;
        l.cache.bytes += bytes;
        l.cache.peak_messages = l.cache.peak_messages.max(l.cache.messages);
        l.cache.peak_bytes = l.cache.peak_bytes.max(l.cache.bytes);
    }

    pub(crate) fn release(&self, bytes: usize) {
        {
            let mut l = self.lock();
            l.cache.messages = l.cache.messages.saturating_sub(1);
            l.cache.bytes = l.cache.bytes.saturating_sub(bytes);
        }
        self.freed.notify_waiters();
    }

    pub(crate) fn level(&self) -> CacheLevel {
        self.lock().cache
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn room_is_what_is_left_under_the_message_limit() {
        let f = FlowControl::new(3, 1000);
        assert_eq!(f.room(), 3);
        let mut r = f.reserve(2).await;
        assert_eq!((r.messages, f.room()), (2, 1), "reserved room is taken");
        f.add(&mut r, 10);
        f.add(&mut r, 10);
        drop(r);
        assert_eq!(f.room(), 1);
        let mut r = f.reserve(5).await;
        assert_eq!(r.messages, 1, "no more than the room left");
        f.add(&mut r, 10);
        assert_eq!(f.room(), 0);
        f.release(10);
        assert_eq!(f.room(), 1);
        assert_eq!(f.level(), CacheLevel { messages: 2, bytes: 20, peak_messages: 3, peak_bytes: 30 });
    }

    #[tokio::test]
    async fn an_unfilled_reservation_gives_its_room_back() {
        let f = FlowControl::new(4, 1000);
        let mut a = f.reserve(3).await;
        let b = f.reserve(3).await;
        assert_eq!((a.messages, b.messages, f.room()), (3, 1, 0), "two loops never take more than the limit");
        f.add(&mut a, 1);
        drop(a);
        drop(b);
        assert_eq!(f.room(), 3);
    }

    #[tokio::test]
    async fn the_byte_limit_stops_receiving_until_released_below_it() {
        let f = FlowControl::new(100, 1000);
        let mut r = f.reserve(10).await;
        f.add(&mut r, 600);
        // A received batch may carry the cache over the byte limit.
        f.add(&mut r, 600);
        drop(r);
        assert_eq!(f.room(), 0);
        f.release(600);
        assert_eq!(f.room(), 99);
        assert_eq!(f.level().peak_bytes, 1200);
    }

    #[test]
    fn release_never_underflows() {
        let f = FlowControl::new(2, 10);
        f.release(5);
        assert_eq!(f.level(), CacheLevel::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_waits_for_a_release() {
        let f = Arc::new(FlowControl::new(1, 1000));
        let mut r = f.reserve(1).await;
        f.add(&mut r, 1);
        drop(r);
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.reserve(1).await.messages }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "no room while the cache is full");
        f.release(1);
        assert_eq!(waiter.await.expect("waiter"), 1);
    }
}
