//! Server-wide graceful shutdown: tell every connection to close with 1001 (going away), then
//! wait for them to finish, up to a deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;
use tokio::sync::{Notify, watch};

struct Inner {
    /// Wakes [`ShutdownToken::triggered`].
    signal: watch::Sender<bool>,
    /// Set before anyone is woken: a lock-free "has it happened" for every wait of every
    /// connection.
    triggered: AtomicBool,
    /// The tasks of the connections waiting for input, woken by `trigger`. A connection
    /// registers its task's waker once (again only if it changes), which costs it one slot
    /// here instead of a boxed future of its own.
    wakers: Mutex<Wakers>,
    live: AtomicUsize,
    drained: Notify,
}

/// A slab of wakers: slots of dropped tokens are reused.
#[derive(Default)]
struct Wakers {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

/// A token not registered with the switch.
const NO_SLOT: usize = usize::MAX;

/// A server-wide shutdown switch.
///
/// Give each connection a [`ShutdownToken`] with [`Conn::set_shutdown`]. After
/// [`trigger`](Self::trigger), each connection sends close 1001 (going away) the next time it
/// polls for input, finishes writing what it had queued before the close frame, and waits for
/// the peer's close frame (bounded by its close timeout); its `recv` then returns
/// [`Error::Closed`](crate::Error::Closed). [`wait`](Self::wait) returns when every token is
/// gone or the deadline passes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shutdown = ferrosocket::Shutdown::new();
/// let token = shutdown.token();
/// let task = tokio::spawn(async move {
///     token.triggered().await; // a connection task would call conn.recv() instead
/// });
/// shutdown.trigger();
/// assert!(shutdown.wait(std::time::Duration::from_secs(1)).await);
/// task.await.unwrap();
/// # }
/// ```
///
/// [`Conn::set_shutdown`]: crate::Conn::set_shutdown
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &*self.inner.signal.borrow())
            .field("live", &self.live())
            .finish()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A switch that has not been triggered.
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                signal,
                wakers: Mutex::default(),
                live: AtomicUsize::new(0),
                triggered: AtomicBool::new(false),
                drained: Notify::new(),
            }),
        }
    }

    /// A token for one connection; the shutdown waits for it to be dropped.
    pub fn token(&self) -> ShutdownToken {
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        ShutdownToken {
            inner: self.inner.clone(),
            rx: self.inner.signal.subscribe(),
            slot: NO_SLOT,
        }
    }

    /// Asks every connection to close with 1001.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        self.inner.signal.send_replace(true);
        // Taken under the lock, woken outside it.
        let woken: Vec<Waker> = match self.inner.wakers.lock() {
            Ok(mut w) => w.slots.iter_mut().filter_map(Option::take).collect(),
            Err(_) => Vec::new(),
        };
        woken.into_iter().for_each(Waker::wake);
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Completes when [`trigger`](Self::trigger) is called, without holding a token (an
    /// accept loop is not a connection [`wait`](Self::wait) should wait for).
    #[cfg(feature = "http3")]
    pub(crate) async fn until_triggered(&self) {
        let mut rx = self.inner.signal.subscribe();
        if rx.wait_for(|on| *on).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// How many tokens are alive.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Waits until every token is dropped (`true`) or `timeout` passes (`false`).
    pub async fn wait(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.drained.notified();
                if self.live() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// One connection's view of a [`Shutdown`]; dropping it tells the shutdown this connection is
/// done.
pub struct ShutdownToken {
    inner: Arc<Inner>,
    rx: watch::Receiver<bool>,
    /// This token's place among the switch's wakers ([`NO_SLOT`] until it registers one).
    slot: usize,
}

impl std::fmt::Debug for ShutdownToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownToken")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl ShutdownToken {
    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Completes when shutdown is triggered.
    pub async fn triggered(&self) {
        let mut rx = self.rx.clone();
        // An error means the switch was dropped: nobody can trigger any more; wait forever.
        if rx.wait_for(|on| *on).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Has `waker` woken when shutdown is triggered (replacing the one registered before),
    /// for poll-based code: register, then check [`is_triggered`](Self::is_triggered), so a
    /// trigger between the two is never missed.
    pub(crate) fn register(&mut self, waker: &Waker) {
        let Ok(mut w) = self.inner.wakers.lock() else {
            return;
        };
        match w.slots.get_mut(self.slot) {
            Some(slot) => *slot = Some(waker.clone()),
            None => {
                self.slot = match w.free.pop() {
                    Some(free) => free,
                    None => {
                        w.slots.push(None);
                        w.slots.len() - 1
                    }
                };
                if let Some(slot) = w.slots.get_mut(self.slot) {
                    *slot = Some(waker.clone());
                }
            }
        }
    }
}

impl Drop for ShutdownToken {
    fn drop(&mut self) {
        if self.slot != NO_SLOT
            && let Ok(mut w) = self.inner.wakers.lock()
            && let Some(slot) = w.slots.get_mut(self.slot)
        {
            *slot = None;
            w.free.push(self.slot);
        }
        if self.inner.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn trigger_wakes_the_registered_wakers_once_each() {
        let shutdown = Shutdown::new();
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let (replaced, replaced_waker) = counting();
        let mut a = shutdown.token();
        let mut b = shutdown.token();
        a.register(&replaced_waker);
        a.register(&first_waker); // replaces the one before
        b.register(&second_waker);
        assert!(!a.is_triggered());
        shutdown.trigger();
        assert!(a.is_triggered() && b.is_triggered());
        assert_eq!(first.0.load(Ordering::SeqCst), 1);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(replaced.0.load(Ordering::SeqCst), 0);
        shutdown.trigger();
        assert_eq!(first.0.load(Ordering::SeqCst), 1, "woken once");
    }

    #[test]
    fn a_dropped_token_frees_its_slot_for_the_next() {
        let shutdown = Shutdown::new();
        let (_, waker) = counting();
        for _ in 0..100 {
            let mut token = shutdown.token();
            token.register(&waker);
        }
        let w = shutdown.inner.wakers.lock().unwrap();
        assert_eq!(w.slots.len(), 1, "one slot, reused");
        assert!(w.slots.iter().all(Option::is_none));
        assert_eq!(shutdown.live(), 0);
    }
}
