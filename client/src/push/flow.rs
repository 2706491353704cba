//! Flow control for the push consumer: how many messages (and bytes) are
//! cached, that is received and not yet finished (waiting for a listener,
//! running, or being acknowledged). The receive loop asks for no more than
//! the room left, so the message count never exceeds its maximum; the byte
//! count is only known after a receive, so it may overshoot by one batch,
//! after which receiving stops until it falls below the maximum again.

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
    level: Mutex<CacheLevel>,
    freed: Notify,
}

impl FlowControl {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self { max_messages, max_bytes, level: Mutex::default(), freed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheLevel> {
        self.level.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many messages may be received now: none while either threshold is reached.
    pub(crate) fn room(&self) -> usize {
        let l = self.lock();
        if l.bytes >= self.max_bytes { 0 } else { self.max_messages.saturating_sub(l.messages) }
    }

    /// Waits until [`FlowControl::room`] is above zero and returns it.
    pub(crate) async fn wait_for_room(&self) -> usize {
        loop {
            // Registered before the check, so a release between the check and
            // the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let room = self.room();
            if room > 0 {
                return room;
            }
            freed.await;
        }
    }

    pub(crate) fn add(&self, bytes: usize) {
        let mut l = self.lock();
        l.messages += 1;
        l.bytes += bytes;
        l.peak_messages = l.peak_messages.max(l.messages);
        l.peak_bytes = l.peak_bytes.max(l.bytes);
    }

    pub(crate) fn release(&self, bytes: usize) {
        {
            let mut l = self.lock();
            l.messages = l.messages.saturating_sub(1);
            l.bytes = l.bytes.saturating_sub(bytes);
        }
        self.freed.notify_waiters();
    }

    pub(crate) fn level(&self) -> CacheLevel {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn room_is_what_is_left_under_the_message_limit() {
        let f = FlowControl::new(3, 1000);
        assert_eq!(f.room(), 3);
        f.add(10);
        f.add(10);
        assert_eq!(f.room(), 1);
        f.add(10);
        assert_eq!(f.room(), 0);
        f.release(10);
        assert_eq!(f.room(), 1);
        assert_eq!(f.level(), CacheLevel { messages: 2, bytes: 20, peak_messages: 3, peak_bytes: 30 });
    }

    #[test]
    fn the_byte_limit_stops_receiving_until_released_below_it() {
        let f = FlowControl::new(100, 1000);
        f.add(600);
        assert_eq!(f.room(), 99);
        // A received batch may carry the cache over the byte limit.
        f.add(600);
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
        f.add(1);
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.wait_for_room().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "no room while the cache is full");
        f.release(1);
        assert_eq!(waiter.await.expect("waiter"), 1);
    }
}
