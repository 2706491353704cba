//! Server-side renewal of `auto_renew` deliveries (official push consumers).
//!
//! A push consumer receives with `auto_renew = true` and no invisible time:
//! the server picks one and keeps the messages invisible while the client
//! works on them, until it acks, nacks (ChangeInvisibleDuration), forwards
//! them to the DLQ, or goes away. Without this a listener slower than the
//! invisible time would see its messages delivered a second time.
//!
//! The replica that served the receive keeps a lease per delivery and,
//! shortly before the deadline, proposes a change of invisible time that keeps
//! the delivery's epoch, so the handle the client holds stays valid. Leases
//! are local and best effort: a lease lost with its replica just lets the
//! delivery's invisible time run out (redelivery, as without auto-renew). The
//! pop state itself stays replicated, and a renewal of a delivery that was
//! acked meanwhile (through any replica) is refused by the state machine and
//! ends the lease. A client the replica no longer knows (its Telemetry stream
//! closed, or it sent NotifyClientTermination) gets its deliveries back after
//! one second, so another consumer can take them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use raftmq_proto::broker::{ChangeInvisible, MetaCommand, PopTarget, command_reply, meta_command};
use tokio::time::Instant;

use crate::batcher::MetaBatcher;
use crate::clients::ClientRegistry;
use crate::clock::now_ms;

/// How the server renews `auto_renew` deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewPolicy {
    /// Invisible time given on receive and on each renewal.
    pub invisible: Duration,
    /// A renewal is proposed when less than this is left.
    pub ahead: Duration,
    /// No renewal past this long after the receive.
    pub max_total: Duration,
}

impl Default for RenewPolicy {
    fn default() -> Self {
        Self {
            invisible: Duration::from_secs(60),
            ahead: Duration::from_secs(10),
            max_total: Duration::from_secs(3 * 3600),
        }
    }
}

/// Invisible time of a delivery whose client went away: long enough for
/// anything in flight, short enough that another consumer takes it soon.
const RELEASE_INVISIBLE: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(500);
/// Renewals per proposal.
const CHUNK: usize = 256;

/// A delivery, by (topic, queue, offset): renewals keep the epoch.
type LeaseKey = (String, String, i32, i64);

#[derive(Debug, Clone)]
struct Lease {
    client: String,
    target: PopTarget,
    deadline_ms: i64,
    since_ms: i64,
}

#[derive(Default)]
struct Leases(Mutex<HashMap<LeaseKey, Lease>>);

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseKey, Lease>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(t: &PopTarget) -> LeaseKey {
    (t.group.clone(), t.topic.clone(), t.queue_id, t.offset)
}

#[derive(Clone)]
pub struct AutoRenewer {
    leases: Arc<Leases>,
    pub policy: RenewPolicy,
}

impl AutoRenewer {
    /// Starts the renewal task; it ends when the last `AutoRenewer` clone is dropped.
    pub fn start(policy: RenewPolicy, metas: MetaBatcher, clients: ClientRegistry) -> Self {
        let leases = Arc::new(Leases::default());
        tokio::spawn(run(Arc::downgrade(&leases), policy, metas, clients));
        Self { leases, policy }
    }

    /// Takes leases on deliveries just handed to `client`.
    pub fn lease(&self, client: &str, targets: impl IntoIterator<Item = PopTarget>) {
        let now = now_ms();
        let deadline_ms = now.saturating_add(self.policy.invisible.as_millis() as i64);
        let mut leases = self.leases.lock();
        for target in targets {
            let lease = Lease { client: client.to_owned(), target, deadline_ms, since_ms: now };
            leases.insert(key(&lease.target), lease);
        }
    }

    /// The client acked, nacked or dead-lettered these: the server stops renewing them.
    pub fn release<'a>(&self, targets: impl IntoIterator<Item = &'a PopTarget>) {
        let mut leases = self.leases.lock();
        // Without auto-renewing clients (the common case) an ack costs no key at all.
        if leases.is_empty() {
            return;
        }
        for t in targets {
            let k = key(t);
            if leases.get(&k).is_some_and(|l| l.target.epoch == t.epoch) {
                leases.remove(&k);
            }
        }
    }
}

async fn run(leases: Weak<Leases>, policy: RenewPolicy, metas: MetaBatcher, clients: ClientRegistry) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(table) = leases.upgrade() else { return };
        let (renew, release) = due(&table, &policy, &clients);
        drop(table);
        let at = now_ms();
        let outcome = propose(&metas, &renew, policy.invisible, true).await;
        propose(&metas, &release, RELEASE_INVISIBLE, false).await;
        let Some(table) = leases.upgrade() else { return };
        let mut map = table.lock();
        for (l, ok) in renew.iter().zip(outcome) {
            let k = key(&l.target);
            match ok {
                Some(true) => {
                    if let Some(cur) = map.get_mut(&k).filter(|c| c.target.epoch == l.target.epoch) {
                        cur.deadline_ms = at.saturating_add(policy.invisible.as_millis() as i64);
                    }
                }
                // Acked, nacked or redelivered meanwhile: nothing left to renew.
                Some(false) if map.get(&k).is_some_and(|c| c.target.epoch == l.target.epoch) => {
                    map.remove(&k);
                }
                Some(false) => {}
                None => {} // not proposed (no leader for now): the next tick tries again
            }
        }
    }
}

/// The leases due for renewal (copies; they stay in the table), and the
/// leases of clients this replica no longer knows (taken out, to hand back).
/// Leases past their maximum age or already lapsed are dropped.
fn due(leases: &Leases, policy: &RenewPolicy, clients: &ClientRegistry) -> (Vec<Lease>, Vec<Lease>) {
    let now = now_ms();
    let ahead = policy.ahead.as_millis() as i64;
    let max_total = policy.max_total.as_millis() as i64;
    let (mut renew, mut release) = (Vec::new(), Vec::new());
    leases.lock().retain(|_, l| {
        if !clients.contains(&l.client) {
            release.push(l.clone());
            return false;
        }
        if now - l.since_ms >= max_total || l.deadline_ms <= now {
            return false; // past its maximum, or already lapsed: redelivery as usual
        }
        if l.deadline_ms - now <= ahead {
            renew.push(l.clone());
        }
        true
    });
    (renew, release)
}

/// Proposes changes of invisible time for `batch`; per lease, whether the
/// state machine accepted it (`None`: not proposed). With `keep_handle` the
/// epoch stays, so the client's handle stays valid.
async fn propose(metas: &MetaBatcher, batch: &[Lease], invisible: Duration, keep_handle: bool) -> Vec<Option<bool>> {
    let mut outcome = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(CHUNK) {
        let now = now_ms();
        let cmds: Vec<MetaCommand> = chunk
            .iter()
            .map(|l| MetaCommand {
                cmd: Some(meta_command::Cmd::ChangeInvisible(ChangeInvisible {
                    target: Some(l.target.clone()),
                    now_ms: now,
                    invisible_ms: invisible.as_millis() as i64,
                    keep_handle,
                })),
            })
            .collect();
        match metas.submit(cmds, Instant::now() + Duration::from_secs(5)).await {
            Ok(replies) => outcome.extend((0..chunk.len()).map(|i| {
                Some(matches!(replies.get(i).and_then(|r| r.result.as_ref()), Some(command_reply::Result::Pop(_))))
            })),
            Err(e) => {
                tracing::warn!(error = %e, n = chunk.len(), "changing the invisible time of auto_renew deliveries failed");
                outcome.extend(std::iter::repeat_n(None, chunk.len()));
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ServerPolicy;

    fn lease(client: &str, offset: i64, deadline_ms: i64, since_ms: i64) -> (LeaseKey, Lease) {
        let target = PopTarget { group: "g".into(), topic: "t".into(), queue_id: 0, offset, epoch: 1, unit: None };
        (key(&target), Lease { client: client.into(), target, deadline_ms, since_ms })
    }

    #[test]
    fn due_renews_near_deadlines_hands_back_lost_clients_and_drops_the_rest() {
        let clients = ClientRegistry::default();
        clients.register("alive", Default::default(), None, &ServerPolicy::default());
        let policy = RenewPolicy::default();
        let now = now_ms();
        let leases = Leases::default();
        leases.lock().extend([
            lease("alive", 1, now + 5_000, now),                   // due: under 10 s left
            lease("alive", 2, now + 50_000, now),                  // not yet
            lease("gone", 3, now + 50_000, now),                   // its client went away
            lease("alive", 4, now - 1, now - 70_000),              // already lapsed
            lease("alive", 5, now + 5_000, now - 4 * 3600 * 1000), // past the 3 h maximum
        ]);
        let (renew, release) = due(&leases, &policy, &clients);
        assert_eq!(renew.iter().map(|l| l.target.offset).collect::<Vec<_>>(), vec![1]);
        assert_eq!(release.iter().map(|l| l.target.offset).collect::<Vec<_>>(), vec![3]);
        let mut kept: Vec<i64> = leases.lock().values().map(|l| l.target.offset).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 2], "renewed leases stay until the state machine answers");
    }
}
