//! What the broker backplanes share: the bounded publication queue between the hub and the
//! backplane's task, the set of topics the hub wants, and the reconnection backoff.
//!
//! Subscriptions are state, not messages: the hub's calls update a set and wake the task,
//! which brings the broker in line with the set (now, or after an outage). So a subscribe or
//! unsubscribe is never lost to a full queue, and only publications can be refused.

use super::Inbound;
use crate::Topic;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// One publication on its way to the broker.
#[derive(Debug)]
pub(super) struct Publication {
    pub(super) topic: Topic,
    pub(super) envelope: Bytes,
    pub(super) keep: usize,
}

/// The topics the hub has local subscribers for.
#[derive(Debug, Default)]
pub(super) struct Wanted {
    topics: Mutex<HashSet<Topic>>,
    changed: Notify,
}

impl Wanted {
    fn lock(&self) -> MutexGuard<'_, HashSet<Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the set.
    pub(super) fn snapshot(&self) -> HashSet<Topic> {
        self.lock().clone()
    }

    /// Resolves when the set changed since the last call (a change made before the call
    /// counts: the wake-up is stored).
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// The hub's side of a broker backplane: the calls of [`Backplane`](super::Backplane) that
/// must not block end here.
#[derive(Debug)]
pub(super) struct Front {
    tx: mpsc::Sender<Publication>,
    rx: Mutex<Option<mpsc::Receiver<Publication>>>,
    pub(super) wanted: Arc<Wanted>,
    inbound: OnceLock<Inbound>,
}

impl Front {
    pub(super) fn new(queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            wanted: Arc::default(),
            inbound: OnceLock::new(),
        }
    }

    /// Takes what the task needs, the first time only; reports a missing runtime.
    pub(super) fn start(
        &self,
        name: &'static str,
        inbound: Inbound,
    ) -> Option<(tokio::runtime::Handle, mpsc::Receiver<Publication>)> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(rx) = rx else {
            tracing::warn!(backplane = name, "hub: a backplane was started twice; ignored");
            return None;
        };
        let _ = self.inbound.set(inbound.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Some((handle, rx)),
            Err(_) => {
                tracing::error!(
                    backplane = name,
                    "hub: no tokio runtime to run the backplane on; build the hub inside one \
                     (serving local subscribers only)"
                );
                inbound.set_up(false, "no tokio runtime: build the hub inside one");
                None
            }
        }
    }

    /// Queues a publication; a full queue (or a task that is not running) counts it as
    /// failed.
    pub(super) fn publish(&self, topic: &Topic, envelope: Bytes, keep: usize) {
        let p = Publication {
            topic: topic.clone(),
            envelope,
            keep,
        };
        if self.tx.try_send(p).is_err()
            && let Some(inbound) = self.inbound.get()
        {
            inbound.publish_failed();
        }
    }

    pub(super) fn subscribe(&self, topic: &Topic) {
        if self.wanted.lock().insert(topic.clone()) {
            self.wanted.changed.notify_one();
        }
    }

    pub(super) fn unsubscribe(&self, topic: &Topic) {
        if self.wanted.lock().remove(topic) {
            self.wanted.changed.notify_one();
        }
    }
}

/// Doubling delays between reconnection attempts, from `min` to `max`.
#[derive(Debug)]
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt; the one after is twice as long, up to `max`.
    pub(super) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(super) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Waits `delay` while the broker is away, counting every publication that arrives meanwhile
/// as failed. Returns `false` when the hub is gone (the queue's senders dropped).
#[cfg(feature = "redis")]
pub(super) async fn wait_out(
    delay: Duration,
    rx: &mut mpsc::Receiver<Publication>,
    inbound: &Inbound,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return inbound.is_alive(),
            p = rx.recv() => match p {
                Some(_) => inbound.publish_failed(),
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [10, 20, 35, 35]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }
}
